"""The OpenAI-compatible API driven by the official ``openai`` client, unchanged."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import openai
import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"


def _client(deployment: Deployment, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=deployment.server.url + "/v1",
        api_key=key or deployment.key,
        max_retries=0,
        timeout=120,
    )


def _extra(obj: Any) -> dict[str, Any]:
    """ragserve's extension fields, as the SDK keeps them (pydantic extras)."""
    return dict(obj.model_extra or {})


def test_a_chat_completion_is_grounded_cited_and_stored(deployment: Deployment) -> None:
    client = _client(deployment)
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "system", "content": "You answer questions about stations."},
            {"role": "user", "content": "What fuel does the Zorblax reactor run on?"},
        ],
        max_tokens=24,
    )
    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert completion.model == CHAT_MODEL
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 24
    assert completion.usage.prompt_tokens > 50  # the sources are in the prompt
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    extra = _extra(completion)
    assert extra["sources"][0]["document_id"] == deployment.document_id
    assert extra["sources"][0]["document_name"] == "zorblax.md"
    with deployment.client() as rest:
        stored = rest.get(f"/v1/conversations/{extra['conversation_id']}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["id"] == extra["message_id"]
    assert stored[1]["content"] == choice.message.content


def test_a_streamed_completion_sends_role_deltas_finish_and_usage(deployment: Deployment) -> None:
    client = _client(deployment)
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "How often is the reactor inspected?"}],
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first, finish, usage = chunks[0], chunks[-2], chunks[-1]
    assert first.choices[0].delta.role == "assistant"
    assert _extra(first)["sources"][0]["document_id"] == deployment.document_id
    deltas = [c.choices[0].delta.content or "" for c in chunks[1:-2]]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert finish.choices[0].finish_reason in ("stop", "length")
    assert "citations" in _extra(finish)
    assert _extra(finish)["citations_dropped"] >= 0
    assert usage.choices == []
    assert usage.usage is not None
    assert 0 < usage.usage.completion_tokens <= 20
    with deployment.client() as rest:
        message_id, conversation_id = _extra(first)["message_id"], _extra(first)["conversation_id"]
        stored = rest.get(f"/v1/conversations/{conversation_id}").json()["messages"][-1]
    assert stored["id"] == message_id
    assert stored["content"] == "".join(deltas)
    assert stored["usage"]["completion_tokens"] == usage.usage.completion_tokens


def test_a_conversation_continues_by_id_and_not_across_tenants(deployment: Deployment) -> None:
    client = _client(deployment)
    first = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Who built the Zorblax reactor?"}],
        max_tokens=8,
    )
    conversation_id = _extra(first)["conversation_id"]
    second = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "When did she build it?"}],
        max_tokens=8,
        extra_body={"conversation_id": conversation_id, "retrieval": {"enabled": False}},
    )
    assert _extra(second)["conversation_id"] == conversation_id
    assert _extra(second)["sources"] == []
    with deployment.client() as rest:
        stored = rest.get(f"/v1/conversations/{conversation_id}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    with pytest.raises(openai.NotFoundError) as caught:
        _client(deployment, deployment.other_key).chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "And then?"}],
            extra_body={"conversation_id": conversation_id},
        )
    assert caught.value.status_code == 404
    with deployment.client() as rest:
        after = rest.get(f"/v1/conversations/{conversation_id}").json()["messages"]
    assert len(after) == 4  # the refused turn stored nothing


def test_closing_a_stream_early_stores_the_turn_as_cancelled(deployment: Deployment) -> None:
    client = _client(deployment)
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Tell a long tale of the reactor and its crew."}],
        max_tokens=800,
        stream=True,
    )
    ids: dict[str, Any] = {}
    for chunk in stream:
        ids = ids or _extra(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    with deployment.client() as rest:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = rest.get(f"/v1/conversations/{ids['conversation_id']}").json()["messages"]
            # The answer is stored as ``streaming`` from its first token: wait for its end.
            if len(messages) == 2 and messages[1]["status"] != "streaming":
                break
            time.sleep(0.2)
    assert messages[1]["id"] == ids["message_id"]
    assert messages[1]["status"] == "cancelled"
    assert messages[1]["usage"]["completion_tokens"] < 800


def test_models_lists_the_generator_and_the_embedder(deployment: Deployment) -> None:
    client = _client(deployment)
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {CHAT_MODEL, EMBEDDING_MODEL}
    assert {m.owned_by for m in models.values()} == {"ragserve"}
    assert client.models.retrieve(EMBEDDING_MODEL).id == EMBEDDING_MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_embeddings_as_floats_and_base64(deployment: Deployment) -> None:
    client = _client(deployment)
    texts = ["The reactor runs on helium-3.", "Helium-3 pellets fuel the reactor.", "Bees dance."]
    single = client.embeddings.create(
        model=EMBEDDING_MODEL, input=texts[0], encoding_format="float"
    )
    batch = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)  # base64 on the wire
    assert len(single.data) == 1
    assert [d.index for d in batch.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in batch.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert np.allclose(single.data[0].embedding, vectors[0], atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert batch.model == EMBEDDING_MODEL
    assert batch.usage.prompt_tokens == batch.usage.total_tokens > single.usage.prompt_tokens > 0


HI = [{"role": "user", "content": "hi"}]
IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
# About 1,800 tokens of instructions: over RAGSERVE_GENERATION_INSTRUCTIONS_TOKEN_BUDGET.
LONG_SYSTEM = [{"role": "system", "content": "Speak like a pirate captain. " * 300}, *HI]


@pytest.mark.parametrize(
    ("route", "request_body", "error", "param"),
    [
        ("chat", {"model": "gpt-4o", "messages": HI}, openai.NotFoundError, "model"),
        ("chat", {"messages": HI, "n": 2}, openai.BadRequestError, "n"),
        ("chat", {"messages": HI, "max_tokens": 100_000}, openai.BadRequestError, "max_tokens"),
        ("chat", {"messages": IMAGE}, openai.BadRequestError, "messages[0].content[0].type"),
        ("chat", {"messages": LONG_SYSTEM}, openai.BadRequestError, "messages"),
        ("chat", {"messages": HI, "extra_body": {"temperature": "hot"}},
         openai.BadRequestError, "temperature"),
        ("embeddings", {"input": ""}, openai.BadRequestError, "input"),
        ("embeddings", {"input": "x", "dimensions": 64}, openai.BadRequestError, "dimensions"),
        ("embeddings", {"model": "text-embedding-3-small", "input": "x"},
         openai.NotFoundError, "model"),
    ],
)  # fmt: skip
def test_bad_requests_raise_the_sdks_own_errors(
    deployment: Deployment,
    route: str,
    request_body: dict[str, Any],
    error: type[openai.APIStatusError],
    param: str,
) -> None:
    client = _client(deployment)
    create: Any = client.chat.completions.create if route == "chat" else client.embeddings.create
    model = CHAT_MODEL if route == "chat" else EMBEDDING_MODEL
    with pytest.raises(error) as caught:
        create(**{"model": model, **request_body})
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == param
    assert body["type"] == "invalid_request_error"
    assert body["message"]
    if request_body.get("messages") is LONG_SYSTEM:
        assert body["code"] == "context_length_exceeded"


def test_a_bad_key_is_an_authentication_error(deployment: Deployment) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        _client(deployment, "not-a-key").models.list()
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "invalid_api_key"
