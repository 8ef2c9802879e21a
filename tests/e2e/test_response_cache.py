"""The response cache across two ``ragserve serve`` processes sharing PostgreSQL and
Redis, driven by the official ``openai`` client, and over the WebSocket protocol
with REST documents on one of them.

NOTE: each process here has its own embedded vector store (a scaled deployment shares
a Qdrant server), so the cross-node turns ask without retrieval: both processes then
build the same prompt. The WebSocket test runs on a process of its own, with retrieval:
a changed or deleted document ends the hits. Redis-side invalidation across nodes
is tested in tests/integration/app/test_response_cache*.py (two clients, as two
nodes).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest

from tests.e2e import ws_client
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


def _ask_ws(server: Server, key: str, question: str) -> dict[str, Any]:
    """One turn over the WebSocket (retrieval on): its ``sources`` and ``done`` payloads."""

    async def turn() -> dict[str, Any]:
        ws = await ws_client.connect(server.ws_url, key)
        try:
            payload = {"conversation_id": None, "content": question, "options": {"max_tokens": 12}}
            await ws_client.send(ws, "chat", "t1", payload)
            messages = await ws_client.until_end(ws, "t1")
        finally:
            await ws.close()
        by_type = {m["type"]: m.get("payload") or {} for m in messages}
        assert "done" in by_type, messages
        tokens = "".join(m["payload"]["text"] for m in messages if m["type"] == "token")
        return {"sources": by_type.get("sources", {}).get("chunks", []), "text": tokens,
                **by_type["done"]}  # fmt: skip

    return asyncio.run(turn())


@pytest.fixture(scope="module")
def single(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[Server]:
    """One process with a Redis prefix (so an ingestion queue) of its own: it indexes
    the documents it is sent into its own embedded store (two processes sharing the
    queue would each index some into theirs)."""
    with shared_nodes(tmp_path_factory, postgres_url, redis_url, ENV, count=1) as nodes:
        yield nodes[0]


def test_over_websocket_a_question_hits_until_its_document_changes(single: Server) -> None:
    server = single
    key = server.create_key("cache-ws")
    auth = {"Authorization": f"Bearer {key}"}
    question = "Why do honey bees dance?"

    def put(content: str) -> dict[str, Any]:
        with httpx.Client(timeout=180) as rest:
            response = rest.post(
                f"{server.url}/v1/documents?wait=true",
                json={"name": "bees.md", "content": content, "content_type": "text/markdown"},
                headers=auth,
            )
        assert response.status_code in (200, 201), response.text
        return dict(response.json()["documents"][0])

    put("Honey bees dance to tell each other where the flowers are.")
    generated = _ask_ws(server, key, question)
    assert generated["sources"], "the document was retrieved"
    assert "cached" not in generated["usage"]
    hit = _ask_ws(server, key, question)
    assert hit["usage"]["cached"] is True
    assert hit["usage"]["cache_kind"] == "exact"
    assert hit["usage"]["completion_tokens"] == 0
    assert hit["text"] == generated["text"]
    assert [c["chunk_id"] for c in hit["sources"]] == [c["chunk_id"] for c in generated["sources"]]

    replaced = put("Honey bees dance to show the way to water, not to flowers.")
    assert replaced["outcome"] == "replaced"
    after_change = _ask_ws(server, key, question)
    assert "cached" not in after_change["usage"]
    assert any("water" in c["text"] for c in after_change["sources"])
    assert _ask_ws(server, key, question)["usage"]["cached"] is True

    with httpx.Client(timeout=60) as rest:
        gone = rest.delete(f"{server.url}/v1/documents/{replaced['document']['id']}", headers=auth)
    assert gone.status_code in (200, 204), gone.text
    after_delete = _ask_ws(server, key, question)
    assert "cached" not in after_delete["usage"]
    assert not any("water" in c["text"] for c in after_delete["sources"])
