"""A real ``ragserve inference`` node driven by the official OpenAI client and raw HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest

from tests.support.inference_node import InferenceNode

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.model

MODEL = "smollm2-135m-instruct"
KEY = "node-test-key"
CHAT: list[Any] = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name three colours."},
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceNode]:
    node = InferenceNode(tmp_path_factory.mktemp("inference-node-api"), api_key=KEY)
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def client(node: InferenceNode) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def http(node: InferenceNode) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.url, headers=node.headers, timeout=60) as http:
        yield http


def test_the_openai_client_streams_what_it_gets_unstreamed(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=20, temperature=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,
        max_tokens=20,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert not chunks[-1].choices
    assert chunks[-1].usage == whole.usage
    assert whole.model == MODEL
    assert whole.usage is not None
    assert whole.usage.completion_tokens <= 20


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_sampling_fields_are_accepted(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL.upper(),
            "messages": CHAT,
            "max_completion_tokens": 8,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 20,
            "seed": 7,
            "stop": ["\n\n"],
            "repetition_penalty": 1.1,
            "user": "tenant-a",
            "priority": "batch",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] <= 8


def test_a_wrong_or_missing_key_is_401_but_probes_stay_open(node: InferenceNode) -> None:
    bad = openai.OpenAI(base_url=f"{node.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    response = httpx.post(f"{node.url}/v1/chat/completions", json={"model": MODEL})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{node.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{node.url}/readyz").json() == {"status": "ready", "model": MODEL}
    metrics = httpx.get(f"{node.url}/metrics")
    assert "ragserve:num_requests_running" in metrics.text
    assert "ragserve:num_requests_waiting" in metrics.text


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": MODEL, "messages": []}, 400, "messages", None),
        ({"model": MODEL, "messages": CHAT, "max_tokens": -1}, 400, "max_tokens", None),
        ({"model": MODEL, "messages": CHAT, "max_tokens": "10"}, 400, "max_tokens", None),
        ({"model": MODEL, "messages": CHAT, "max_tokens": 100_000}, 400, "max_tokens", None),
        (
            {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]},
            400,
            "messages[0].role",
            None,
        ),
        ({"model": MODEL, "messages": CHAT, "temperature": 3}, 400, "temperature", None),
        ({"model": MODEL, "messages": CHAT, "n": 2}, 400, "n", None),
        ({"model": MODEL, "messages": CHAT, "priority": "urgent"}, 400, "priority", None),
        ({"messages": CHAT}, 400, "model", None),
        ({"model": "gpt-4o", "messages": CHAT}, 404, "model", "model_not_found"),
    ],
)
def test_bad_input_is_a_4xx_in_openai_shape(
    http: httpx.Client, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "Invalid JSON" in response.json()["error"]["message"]


def test_the_openai_client_raises_the_node_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=CHAT)
    with pytest.raises(openai.BadRequestError, match="limit is"):
        client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=100_000)
