"""The same server on PostgreSQL: migrate, key, ingest, chat, restart, all for real."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import httpx
import pytest
import websockets

from tests.e2e.server import Server

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


async def _ask(server: Server, key: str, question: str) -> list[dict[str, object]]:
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": key}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "chat", "id": "t", "payload": {"content": question}}))
        messages = []
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            messages.append(message)
            if message["type"] in ("done", "error"):
                return messages


def test_a_postgres_backed_server_answers_and_keeps_conversations(
    postgres_url: str, tmp_path: Path
) -> None:
    server = Server(tmp_path, {"RAGSERVE_DATABASE_URL": postgres_url})
    server.cli("migrate")
    key = server.create_key("pg-tenant")
    server.start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            ingested = client.post(
                "/v1/documents",
                params={"wait": "true"},
                json={
                    "name": "lighthouse.md",
                    "content": "The Brightwater lighthouse was painted red in 1931 by Ada Lund.",
                    "content_type": "text/markdown",
                },
            )
            assert ingested.status_code == 201, ingested.text
        messages = asyncio.run(_ask(server, key, "Who painted the Brightwater lighthouse?"))
        assert messages[-1]["type"] == "done", messages[-1]
        conversation_id = messages[0]["payload"]["conversation_id"]  # type: ignore[index]
        server.restart()
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            stored = client.get(f"/v1/conversations/{conversation_id}").json()
        assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
        assert stored["messages"][1]["status"] == "complete"
    finally:
        server.stop()
