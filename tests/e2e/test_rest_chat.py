"""Chat over REST (JSON and server-sent events) as an integrator sees it."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e


def _sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    kind, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif line == "" and data:
            events.append((kind, json.loads(data)))
            kind, data = "message", ""
    return events


def test_sse_streams_tokens_then_done_with_citations(deployment: Deployment) -> None:
    with deployment.client() as client:
        conversation = client.post("/v1/conversations", json={"title": "reactor"}).json()
        with client.stream(
            "POST",
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "What fuel does the Zorblax reactor run on?"},
            headers={"Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _sse_events(response)
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["conversation", "sources"]
    assert kinds[-1] == "done"
    tokens = [p for k, p in events if k == "token"]
    assert len(tokens) > 3
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    done = events[-1][1]
    assert {c["document_id"] for c in done["citations"]} == {deployment.document_id}


def test_json_answer_is_stored_with_usage_timings_and_sources(deployment: Deployment) -> None:
    with deployment.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()
        response = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "How often is the reactor inspected?", "options": {"max_tokens": 24}},
        )
        assert response.status_code == 200, response.text
        message = response.json()["message"]
        assert message["role"] == "assistant"
        assert message["status"] == "complete"
        assert message["content"]
        assert message["model"] == "smollm2-135m-instruct"  # the public model name
        assert message["model_version"]
        assert message["usage"]["completion_tokens"] <= 24
        assert message["sources"][0]["document_id"] == deployment.document_id
        stored = client.get(f"/v1/conversations/{conversation['id']}").json()
        assert stored["messages"][-1] == message
        assert stored["title"] == "How often is the reactor inspected?"


def test_feedback_on_an_answer(deployment: Deployment) -> None:
    with deployment.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()
        answer = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "Who leads inspections?", "options": {"max_tokens": 8}},
        ).json()["message"]
        response = client.post(
            f"/v1/messages/{answer['id']}/feedback", json={"rating": -1, "comment": "vague"}
        )
        assert response.status_code == 201
        assert response.json()["rating"] == -1
        bad = client.post(f"/v1/messages/{answer['id']}/feedback", json={"rating": 5})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_request"
    with deployment.client(deployment.other_key) as other:
        response = other.post(f"/v1/messages/{answer['id']}/feedback", json={"rating": 1})
        assert response.status_code == 404


def test_closing_the_sse_stream_cancels_and_stores_the_turn(deployment: Deployment) -> None:
    with deployment.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()
        with client.stream(
            "POST",
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "Tell a long tale of the reactor.", "options": {"max_tokens": 400}},
            headers={"Accept": "text/event-stream"},
        ) as response:
            for line in response.iter_lines():
                if line.startswith("event: token"):
                    break
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = client.get(f"/v1/conversations/{conversation['id']}").json()["messages"]
            # The answer is stored as ``streaming`` from its first token: wait for its end.
            if len(messages) == 2 and messages[1]["status"] != "streaming":
                break
            time.sleep(0.2)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["status"] == "cancelled"
    assert messages[1]["usage"]["completion_tokens"] < 400


def test_a_thumbs_down_opens_a_labeling_task(deployment: Deployment) -> None:
    with deployment.client() as client:
        conversation = client.post("/v1/conversations", json={}).json()
        answer = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "What powers the reactor?", "options": {"max_tokens": 6}},
        ).json()["message"]
        assert (
            client.post(
                f"/v1/messages/{answer['id']}/feedback", json={"rating": -1, "comment": "wrong"}
            ).status_code
            == 201
        )
    with sqlite3.connect(deployment.server.data_dir / "ragserve.db") as db:
        rows = db.execute(
            "SELECT source, status, conversation_id FROM labeling_tasks WHERE message_id = ?",
            (answer["id"],),
        ).fetchall()
    assert rows == [("user_feedback", "open", conversation["id"])]
