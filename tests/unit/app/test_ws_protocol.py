"""Parsing of WebSocket frames: what is a protocol violation and what is not."""

from __future__ import annotations

import json

import pytest

from app.entrypoints.ws.protocol import (
    ClientType,
    ProtocolViolation,
    parse_client_message,
    server_message,
)


def test_a_chat_message_parses() -> None:
    message = parse_client_message(
        json.dumps({"type": "chat", "id": "t1", "payload": {"content": "hi"}}), 1024
    )
    assert message.type is ClientType.CHAT
    assert message.id == "t1"
    assert message.payload == {"content": "hi"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "shout"}', "unknown message type"),
        ('{"type": "chat", "payload": {}}', "needs an id"),
        ('{"type": "cancel"}', "needs an id"),
        ('{"type": "chat", "id": 5}', "id must be a string"),
        ('{"type": "ping", "extra": 1}', "unknown fields"),
        ('{"type": "chat", "id": "a", "payload": [1]}', "payload must be"),
        (json.dumps({"type": "ping", "payload": {"x": "y" * 100}}), "larger than"),
    ],
)
def test_violations_have_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=reason):
        parse_client_message(raw, 64)


def test_server_messages_echo_the_turn_id() -> None:
    assert json.loads(server_message("token", "t1", {"index": 0, "text": "a"})) == {
        "type": "token",
        "id": "t1",
        "payload": {"index": 0, "text": "a"},
    }
    assert "id" not in json.loads(server_message("connection_ack", None, {}))
