"""A small WebSocket client of ragserve's chat protocol for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import websockets

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection


async def connect(url: str, token: str, timeout_s: float = 30.0) -> ClientConnection:
    """A socket past ``connection_init``/``connection_ack``."""
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    assert ack["type"] == "connection_ack", ack
    return ws


async def send(ws: ClientConnection, kind: str, turn_id: str, payload: dict[str, Any]) -> None:
    await ws.send(json.dumps({"type": kind, "id": turn_id, "payload": payload}))


async def until_end(ws: ClientConnection, turn_id: str) -> list[dict[str, Any]]:
    """Every message of one turn up to its ``done`` or ``error``."""
    messages = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 120))
        if message.get("id") != turn_id:
            continue
        messages.append(message)
        if message["type"] in ("done", "error"):
            return messages
