"""The WebSocket chat protocol (``docs/websocket-protocol.md``): messages, close codes.

Every message is a JSON object ``{"type", "id", "payload"}``. ``id`` names one
chat turn, so one socket carries several turns at once; the server echoes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from app.entrypoints.rest.conversations.schemas import ChatRequest
from app.entrypoints.schemas import Schema

if TYPE_CHECKING:
    from app.chat.events import EventKind

MAX_ID_LENGTH = 128


class CloseCode(IntEnum):
    BAD_MESSAGE = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    INIT_TIMEOUT = 4408
    RATE_LIMITED = 4429


class ClientType(StrEnum):
    CONNECTION_INIT = "connection_init"
    CHAT = "chat"
    CANCEL = "cancel"
    RESUME = "resume"
    PING = "ping"


class ServerType(StrEnum):
    """The server's own message types; a turn's events are ``EventKind``s."""

    CONNECTION_ACK = "connection_ack"
    PONG = "pong"


class ProtocolViolation(Exception):
    """A message that breaks the protocol; the socket is closed with ``BAD_MESSAGE``."""


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: ClientType
    id: str | None
    payload: dict[str, Any]


class InitPayload(Schema):
    # An API key or a JWT (RS256 tokens run past 512 characters).
    token: str = Field(min_length=1, max_length=8192)


class ResumePayload(Schema):
    """A ``resume`` message: replay a turn's tokens after ``after_index`` (-1: all)."""

    message_id: str = Field(min_length=1, max_length=64)
    after_index: int = Field(default=-1, ge=-1)


class ChatPayload(ChatRequest):
    """A ``chat`` message: a REST chat request plus the conversation it continues."""

    conversation_id: str | None = Field(default=None, max_length=64)


def parse_client_message(raw: str | bytes, max_bytes: int) -> ClientMessage:
    """Parse one frame; raises ``ProtocolViolation`` with a reason fit for a close frame."""
    if len(raw) > max_bytes:
        raise ProtocolViolation(f"message larger than {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolViolation("message is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolViolation("message must be a JSON object")
    unknown = set(data) - {"type", "id", "payload"}
    if unknown:
        raise ProtocolViolation(f"unknown fields: {', '.join(sorted(unknown))}")
    try:
        kind = ClientType(str(data.get("type")))
    except ValueError as exc:
        raise ProtocolViolation(f"unknown message type: {data.get('type')!r}"[:120]) from exc
    message_id = data.get("id")
    if message_id is not None and (
        not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID_LENGTH
    ):
        raise ProtocolViolation(f"id must be a string of 1 to {MAX_ID_LENGTH} characters")
    if kind in (ClientType.CHAT, ClientType.CANCEL, ClientType.RESUME) and message_id is None:
        raise ProtocolViolation(f"{kind} needs an id")
    payload = data.get("payload") or {}
    if not isinstance(payload, dict):
        raise ProtocolViolation("payload must be a JSON object")
    return ClientMessage(kind, message_id, payload)


def validation_reason(exc: Exception) -> str:
    """A short reason for an invalid payload: the first problem and where it is."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        return f"{where}: {err.get('msg')}"
    return str(exc)


def server_message(
    kind: ServerType | EventKind, message_id: str | None, payload: dict[str, Any]
) -> str:
    body: dict[str, Any] = {"type": str(kind), "payload": payload}
    if message_id is not None:
        body["id"] = message_id
    return json.dumps(body, separators=(",", ":"), default=str)
