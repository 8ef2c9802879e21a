"""A user's chat over the WebSocket protocol, against a real server process."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
import websockets

from tests.e2e.ws_client import connect, until_end

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e


async def _connect(deployment: Deployment, key: str | None = None) -> ClientConnection:
    return await connect(deployment.server.ws_url, key or deployment.key)


async def test_chat_streams_tokens_and_cites_the_ingested_document(deployment: Deployment) -> None:
    ws = await _connect(deployment)
    async with ws:
        await ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": "t1",
                    "payload": {
                        "conversation_id": None,
                        "content": "Who built the Zorblax reactor?",
                    },
                }
            )
        )
        messages = await until_end(ws, "t1")
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "conversation"
    assert kinds[1] == "sources"
    assert kinds[-1] == "done", messages[-1]
    tokens = [m["payload"] for m in messages if m["type"] == "token"]
    assert len(tokens) > 3, "the answer must arrive token by token"
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    sources = messages[1]["payload"]["chunks"]
    assert sources
    assert sources[0]["document_id"] == deployment.document_id
    done = messages[-1]["payload"]
    assert done["finish_reason"] in ("stop", "length")
    assert done["citations"], f"no citation in {''.join(t['text'] for t in tokens)!r}"
    assert {c["document_id"] for c in done["citations"]} == {deployment.document_id}
    # Each citation points at the sentence of its chunk that holds the claim's words.
    texts = {c["n"]: c["text"] for c in sources}
    spans = [(texts[c["n"]], c["support"]) for c in done["citations"] if c["support"]]
    assert spans, done["citations"]
    for text, span in spans:
        assert 0 <= span["start"] < span["end"] <= len(text)
        assert 0 < span["score"] <= 1
    assert done["usage"]["completion_tokens"] >= len(tokens)
    assert {"retrieve", "first_token", "total"} <= set(done["timings"])

    conversation_id = messages[0]["payload"]["conversation_id"]
    with deployment.client() as client:
        stored = client.get(f"/v1/conversations/{conversation_id}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    answer = stored["messages"][1]
    assert answer["id"] == done["message_id"]
    assert answer["content"] == "".join(t["text"] for t in tokens)
    assert answer["status"] == "complete"
    assert answer["citations"] == done["citations"]


async def test_cancel_stops_the_turn_and_stores_it_as_cancelled(deployment: Deployment) -> None:
    ws = await _connect(deployment)
    async with ws:
        await ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": "long",
                    "payload": {
                        "content": "Write a long story about the Zorblax reactor.",
                        "options": {"max_tokens": 400, "temperature": 0.8, "seed": 1},
                    },
                }
            )
        )
        seen: list[dict[str, Any]] = []
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            seen.append(message)
            if message["type"] == "token":
                await ws.send(json.dumps({"type": "cancel", "id": "long"}))
                break
        seen += await until_end(ws, "long")
    done = seen[-1]
    assert done["type"] == "done"
    assert done["payload"]["finish_reason"] == "cancelled"
    assert done["payload"]["usage"]["completion_tokens"] < 400
    with deployment.client() as client:
        conversation_id = seen[0]["payload"]["conversation_id"]
        stored = client.get(f"/v1/conversations/{conversation_id}").json()
    answer = stored["messages"][-1]
    assert answer["status"] == "cancelled"
    assert answer["finish_reason"] == "cancelled"


async def test_several_turns_run_at_once_on_one_socket(deployment: Deployment) -> None:
    ws = await _connect(deployment)
    async with ws:
        for turn_id in ("a", "b"):
            await ws.send(
                json.dumps(
                    {
                        "type": "chat",
                        "id": turn_id,
                        "payload": {
                            "content": "What is the coolant?",
                            "options": {"max_tokens": 8},
                        },
                    }
                )
            )
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        ended: dict[str, str] = {}
        pong = False
        while len(ended) < 2:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if message["type"] == "pong":
                pong = True
            elif message["type"] in ("done", "error"):
                ended[message["id"]] = message["type"]
    assert ended == {"a": "done", "b": "done"}
    assert pong


async def test_a_follow_up_turn_continues_the_conversation(deployment: Deployment) -> None:
    ws = await _connect(deployment)
    async with ws:
        await ws.send(
            json.dumps(
                {"type": "chat", "id": "1", "payload": {"content": "What is the reactor's fuel?"}}
            )
        )
        first = await until_end(ws, "1")
        conversation_id = first[0]["payload"]["conversation_id"]
        await ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": "2",
                    "payload": {"conversation_id": conversation_id, "content": "And its power?"},
                }
            )
        )
        second = await until_end(ws, "2")
    assert second[0]["payload"]["conversation_id"] == conversation_id
    assert second[-1]["type"] == "done"


async def test_bad_messages_get_errors_or_close_codes(deployment: Deployment) -> None:
    ws = await _connect(deployment)
    async with ws:
        await ws.send(json.dumps({"type": "chat", "id": "x", "payload": {"content": ""}}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert error == {"type": "error", "id": "x", "payload": error["payload"]}
        assert error["payload"]["code"] == "invalid_request"
        await ws.send(
            json.dumps({"type": "chat", "id": "y", "payload": {"content": "hi", "bogus": 1}})
        )
        assert (
            json.loads(await asyncio.wait_for(ws.recv(), 10))["payload"]["code"]
            == "invalid_request"
        )
        await ws.send(
            json.dumps(
                {"type": "chat", "id": "z", "payload": {"conversation_id": "nope", "content": "hi"}}
            )
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["payload"]["code"] == "not_found"
        await ws.send("{not json")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4400


async def test_a_bad_token_closes_4401(deployment: Deployment) -> None:
    ws = await websockets.connect(deployment.server.ws_url)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"token": "rsk_wrong"}}))
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4401


async def test_no_init_closes_4408(deployment: Deployment) -> None:
    ws = await websockets.connect(deployment.server.ws_url)
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4408


async def test_another_tenants_conversation_is_not_found(deployment: Deployment) -> None:
    ws = await _connect(deployment)
    async with ws:
        await ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": "1",
                    "payload": {"content": "Hello", "options": {"max_tokens": 4}},
                }
            )
        )
        first = await until_end(ws, "1")
    conversation_id = first[0]["payload"]["conversation_id"]
    other = await _connect(deployment, deployment.other_key)
    async with other:
        await other.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": "1",
                    "payload": {"conversation_id": conversation_id, "content": "Hi"},
                }
            )
        )
        reply = json.loads(await asyncio.wait_for(other.recv(), 10))
    assert reply["type"] == "error"
    assert reply["payload"]["code"] == "not_found"
