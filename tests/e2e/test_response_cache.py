"""The response cache across two ``ragserve serve`` processes sharing PostgreSQL and
Redis, driven by the official ``openai`` client.

NOTE: each process here has its own embedded vector store (a scaled deployment shares
a Qdrant server), so these turns ask without retrieval: both processes then build
the same prompt. Invalidation by a changed document is tested in
tests/integration/app/test_response_cache*.py (Redis: two clients, as two nodes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest

from tests.e2e.server import Server, shared_nodes

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MODEL = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"
NO_RETRIEVAL = {"retrieval": {"enabled": False}}

ENV = {"RAGSERVE_RESPONSE_CACHE_ENABLED": "true", "RAGSERVE_SAFETY_ENABLED": "false"}


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[list[Server]]:
    with shared_nodes(tmp_path_factory, postgres_url, redis_url, ENV) as nodes:
        yield nodes


def _stream(server: Server, key: str) -> tuple[str, dict[str, Any], Any]:
    """The streamed answer, the final chunk's extension fields and the usage chunk."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)
    text, final, usage = "", {}, None
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=NO_RETRIEVAL,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.choices and chunk.choices[0].finish_reason:
            final = dict(chunk.model_extra or {})
        if chunk.usage is not None:
            usage = chunk.usage
    return text, final, usage


def test_an_answer_generated_on_one_node_is_served_from_the_cache_on_the_other(
    servers: list[Server],
) -> None:
    key = servers[0].create_key("cache-e2e")
    generated, final, usage = _stream(servers[0], key)
    assert "cached" not in final
    assert usage.completion_tokens > 0
    cached, final, usage = _stream(servers[1], key)
    assert cached == generated
    assert final["cached"]["kind"] == "exact"
    assert final["cached"]["similarity"] == 1.0
    assert usage.completion_tokens == 0
    # A non-streamed request says it too, and the turn is stored like any other.
    client = openai.OpenAI(base_url=f"{servers[0].url}/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=16,
        extra_body=NO_RETRIEVAL,
    )
    extra = dict(completion.model_extra or {})
    assert extra["cached"]["kind"] == "exact"
    assert completion.choices[0].message.content == generated
    with httpx.Client(timeout=30) as rest:
        stored = rest.get(
            f"{servers[1].url}/v1/conversations/{extra['conversation_id']}",
            headers={"Authorization": f"Bearer {key}"},
        )
    assert stored.status_code == 200, stored.text
    answer = stored.json()["messages"][-1]
    assert answer["usage"]["cached"] is True
    assert answer["content"] == generated
