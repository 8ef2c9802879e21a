"""Faults on a real ``ragserve serve`` process: kill -9 mid-stream, SIGTERM mid-stream,
and retried requests carrying an ``Idempotency-Key``.

One server (SQLite, no Redis) serves the whole module; the crash and drain tests
restart it. Each test's docstring says what it guards.
"""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

LONG = {"max_tokens": 400, "retrieval_k": 0, "temperature": 0.0}
QUESTION = "Write a long story about a lighthouse keeper and the sea, with many details."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("ragserve-faults")
    server = Server(
        data_dir,
        {
            "RAGSERVE_GENERATION_MAX_TOKENS": "400",
            "RAGSERVE_ANSWER_HEARTBEAT_S": "0.5",
            "RAGSERVE_ANSWER_STALE_S": "2",
            "RAGSERVE_DRAIN_GRACE_S": "1",
        },
    )
    server.cli("migrate")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def key(server: Server) -> str:
    return server.create_key("faults")


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _stream_until_tokens(
    client: httpx.Client, conversation_id: str, tokens: int
) -> tuple[httpx.Response, Iterator[tuple[str, dict[str, Any]]], str, list[str]]:
    """Open an SSE turn and read it until ``tokens`` tokens arrived."""
    request = client.build_request(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": QUESTION, "options": LONG},
        headers={"Accept": "text/event-stream"},
    )
    response = client.send(request, stream=True)
    assert response.status_code == 200, response.read()
    events = _events(response)
    message_id, texts = "", []
    for kind, payload in events:
        if kind == "conversation":
            message_id = payload["message_id"]
        elif kind == "token":
            texts.append(payload["text"])
            if len(texts) >= tokens:
                break
    assert message_id
    assert len(texts) >= tokens
    return response, events, message_id, texts


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line.split(":", 1)[1])


def _last_message(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    detail = client.get(f"/v1/conversations/{conversation_id}")
    assert detail.status_code == 200, detail.text
    return dict(detail.json()["messages"][-1])


def test_kill_9_mid_stream_leaves_an_interrupted_answer(server: Server, key: str) -> None:
    """Guards: a crash mid-stream used to leave a question with no answer row (the id
    the client saw never appeared). Now the row exists from the first event, and
    after a restart it is ``interrupted`` with the text produced; the next turn works.
    """
    with _client(server, key) as client:
        conversation = client.post("/v1/conversations", json={"title": "crash"}).json()
        # NOTE: keep ``events``: a collected generator closes the response with it.
        response, events, message_id, _ = _stream_until_tokens(client, conversation["id"], 3)
        assert events is not None
        # The answer exists while it streams.
        streaming = _last_message(client, conversation["id"])
        assert (streaming["id"], streaming["status"]) == (message_id, "streaming")
        time.sleep(1.2)  # at least one heartbeat stores the text so far
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        server.process = None
        response.close()
    server.start()
    with _client(server, key) as client:
        deadline = time.monotonic() + 15
        while (last := _last_message(client, conversation["id"]))["status"] == "streaming":
            assert time.monotonic() < deadline, last
            time.sleep(0.3)
        assert last["id"] == message_id
        assert last["status"] == "interrupted"
        assert last["finish_reason"] == "interrupted"
        assert last["content"]
        answer = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "And then?", "options": {"max_tokens": 8, "retrieval_k": 0}},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"]["status"] == "complete"


def test_sigterm_drains_then_interrupts_running_streams(server: Server, key: str) -> None:
    """Guards: SIGTERM used to cut a streaming answer with nothing stored. Now
    readiness fails first, new turns get 503 with Retry-After, the running stream
    ends (after the grace period) with finish reason ``interrupted``, stored, and
    the process exits.
    """
    with _client(server, key) as client:
        conversation = client.post("/v1/conversations", json={"title": "drain"}).json()
        response, events, message_id, _ = _stream_until_tokens(client, conversation["id"], 2)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert client.get("/readyz").status_code == 503
        refused = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "Another question", "options": {"max_tokens": 4}},
        )
        assert refused.status_code == 503, refused.text
        assert "retry-after" in refused.headers
        done = [payload for kind, payload in events if kind == "done"]
        response.close()
        assert done, "the stream ended without a done event"
        assert done[0]["finish_reason"] == "interrupted"
        server.process.wait(timeout=30)
        server.process = None
    server.start()
    with _client(server, key) as client:
        last = _last_message(client, conversation["id"])
        assert (last["id"], last["status"]) == (message_id, "interrupted")


def test_a_retried_chat_turn_with_an_idempotency_key_runs_once(server: Server, key: str) -> None:
    """Guards: a client retrying a POST after a lost answer used to get a second turn."""
    with _client(server, key) as client:
        conversation = client.post("/v1/conversations", json={"title": "retry"}).json()
        url = f"/v1/conversations/{conversation['id']}/messages"
        body = {"content": "Say hi", "options": {"max_tokens": 4, "retrieval_k": 0}}
        headers = {"Idempotency-Key": "turn-1"}
        first = client.post(url, json=body, headers=headers)
        again = client.post(url, json=body, headers=headers)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json()["message"]["id"] == first.json()["message"]["id"]
        messages = client.get(f"/v1/conversations/{conversation['id']}").json()["messages"]
        assert len(messages) == 2
        other = client.post(url, json={**body, "content": "Say bye"}, headers=headers)
        assert other.status_code == 422
        assert "different request" in other.json()["error"]["message"]
        too_long = client.post(url, json=body, headers={"Idempotency-Key": "k" * 256})
        assert too_long.status_code == 422


def test_a_retried_upload_with_an_idempotency_key_ingests_once(server: Server, key: str) -> None:
    """Guards: a retried upload used to create (or re-ingest) a second time."""
    with _client(server, key) as client:
        files = {"file": ("retry.md", b"# Retry\nIdempotent uploads.", "text/markdown")}
        headers = {"Idempotency-Key": "upload-1"}
        first = client.post("/v1/documents", files=files, headers=headers)
        again = client.post("/v1/documents", files=files, headers=headers)
        assert first.status_code == again.status_code == 202, again.text
        assert again.json() == first.json()
        other = {"file": ("retry.md", b"# Other content", "text/markdown")}
        assert client.post("/v1/documents", files=other, headers=headers).status_code == 422
