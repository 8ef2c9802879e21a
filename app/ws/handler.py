"""The WebSocket endpoint ``/v1/ws``: authenticate, then run several turns at once."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import aclosing
from typing import Any

import structlog
from litestar import WebSocket, websocket
from pydantic import ValidationError

from app.auth import Principal, authenticate
from app.errors import ApiError, UnavailableError, classify
from app.metrics import ERRORS
from app.pipeline import TurnRequest
from app.services import Services
from app.turn_events import error_payload, to_wire
from app.ws.protocol import (
    ChatPayload,
    ClientMessage,
    ClientType,
    CloseCode,
    InitPayload,
    ProtocolViolation,
    ServerType,
    parse_client_message,
    server_message,
)

log = structlog.get_logger(__name__)


class _Closed(Exception):
    """The peer went away."""


class ChatSocket:
    """One client connection and the turns running on it."""

    def __init__(self, socket: WebSocket[Any, Any, Any], services: Services) -> None:
        self._socket = socket
        self._services = services
        self._settings = services.settings.server
        self._send_lock = asyncio.Lock()
        self._turns: dict[str, tuple[asyncio.Task[None], TurnRequest]] = {}
        self._principal: Principal | None = None

    async def serve(self) -> None:
        await self._socket.accept()
        try:
            if await self._handshake():
                await self._loop()
        except _Closed:
            pass
        finally:
            await self._cancel_all()

    async def _receive(self) -> str | bytes:
        event: dict[str, Any] = dict(await self._socket.receive())
        if event["type"] == "websocket.disconnect":
            raise _Closed
        text = event.get("text")
        if isinstance(text, str):
            return text
        raw = event.get("bytes")
        return raw if isinstance(raw, bytes) else b""

    async def _close(self, code: CloseCode, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._socket.close(code=int(code), reason=reason[:120])

    async def _send(
        self, kind: ServerType | str, message_id: str | None, payload: dict[str, Any]
    ) -> None:
        async with self._send_lock:
            try:
                await self._socket.send_text(server_message(kind, message_id, payload))
            except Exception as exc:
                raise _Closed from exc

    async def _handshake(self) -> bool:
        try:
            raw = await asyncio.wait_for(self._receive(), timeout=self._settings.ws_init_timeout_s)
        except TimeoutError:
            await self._close(CloseCode.INIT_TIMEOUT, "connection_init timeout")
            return False
        try:
            message = parse_client_message(raw, self._settings.ws_max_message_bytes)
            if message.type is not ClientType.CONNECTION_INIT:
                raise ProtocolViolation("the first message must be connection_init")
            init = InitPayload.model_validate(message.payload)
        except (ProtocolViolation, ValidationError) as exc:
            await self._close(CloseCode.BAD_MESSAGE, _reason(exc))
            return False
        try:
            self._principal = await authenticate(self._services.api_keys, init.token)
        except ApiError:
            await self._close(CloseCode.UNAUTHORIZED, "invalid or revoked API key")
            return False
        await self._send(ServerType.CONNECTION_ACK, None, {})
        return True

    async def _loop(self) -> None:
        while True:
            raw = await self._receive()
            try:
                message = parse_client_message(raw, self._settings.ws_max_message_bytes)
            except ProtocolViolation as exc:
                await self._close(CloseCode.BAD_MESSAGE, str(exc))
                return
            await self._dispatch(message)

    async def _dispatch(self, message: ClientMessage) -> None:
        if message.type is ClientType.PING:
            await self._send(ServerType.PONG, message.id, message.payload)
        elif message.type is ClientType.CHAT:
            await self._start_turn(message)
        elif message.type is ClientType.CANCEL:
            assert message.id is not None
            entry = self._turns.get(message.id)
            if entry is None:
                await self._error(message.id, "unknown_turn", "No running turn has this id.")
            else:
                await self._pipeline().cancel(entry[1].message_id)
        elif message.type is ClientType.RESUME:
            await self._error(message.id, "not_supported", "resume is not supported yet.")
        else:
            await self._error(
                message.id, "already_initialised", "connection_init was already sent."
            )

    async def _start_turn(self, message: ClientMessage) -> None:
        assert message.id is not None
        assert self._principal is not None
        if message.id in self._turns:
            await self._error(message.id, "duplicate_id", "A turn with this id is still running.")
            return
        if len(self._turns) >= self._settings.ws_max_turns:
            await self._error(
                message.id,
                "too_many_turns",
                f"At most {self._settings.ws_max_turns} turns may run at once on one socket.",
            )
            return
        try:
            chat = ChatPayload.model_validate(message.payload)
        except ValidationError as exc:
            await self._error(message.id, "invalid_request", _reason(exc))
            return
        engine = self._services.engine
        if chat.model is not None and engine is not None and chat.model != engine.model_name:
            await self._error(
                message.id, "model_not_found", f"This node serves {engine.model_name!r} only."
            )
            return
        request = chat.to_turn_request(self._principal.tenant_id, chat.conversation_id)
        task = asyncio.create_task(self._run_turn(message.id, request))
        self._turns[message.id] = (task, request)

    async def _run_turn(self, turn_id: str, request: TurnRequest) -> None:
        try:
            async with aclosing(self._pipeline().run(request)) as events:
                async for event in events:
                    kind, payload = to_wire(event)
                    await self._send(kind, turn_id, payload)
        except _Closed:
            pass
        except Exception as exc:
            error = classify(exc)
            ERRORS.labels(error.code).inc()
            with contextlib.suppress(_Closed):
                await self._send(ServerType.ERROR, turn_id, error_payload(error))
        finally:
            self._turns.pop(turn_id, None)

    async def _error(self, turn_id: str | None, code: str, message: str) -> None:
        ERRORS.labels(code).inc()
        await self._send(ServerType.ERROR, turn_id, {"code": code, "message": message})

    def _pipeline(self) -> Any:
        if self._services.pipeline is None:
            raise UnavailableError("Generation is not enabled on this node.")
        return self._services.pipeline

    async def _cancel_all(self) -> None:
        """The client left: cancel its turns and wait until their answers are stored."""
        turns = list(self._turns.values())
        for _, request in turns:
            with contextlib.suppress(Exception):
                await self._pipeline().cancel(request.message_id)
        if turns:
            await asyncio.gather(*(task for task, _ in turns), return_exceptions=True)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        return f"{where}: {err.get('msg')}"
    return str(exc)


@websocket("/v1/ws", exclude_from_auth=True)
async def chat_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """Chat over WebSocket with the protocol of DESIGN.md §4 (see app/ws/protocol.py)."""
    await ChatSocket(socket, socket.app.state.services).serve()
