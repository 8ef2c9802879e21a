"""The WebSocket endpoint ``/v1/ws``: authenticate, then run several turns at once.

Turns run in the process's ``TurnRunner``, not in the socket: when the socket
goes away they keep running for a grace period, so a client can ``resume`` them
(see ``resume.py`` beside this file and ``docs/websocket-protocol.md``).

The credential of ``connection_init`` is checked again before every ``chat`` and
``resume``: a revoked key, a disabled user or an expired token closes the socket
with 4401, a credential that lost the ``chat`` scope with 4403; a JWT's socket
closes (4401) when the token expires, even while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import structlog
from litestar import WebSocket, websocket
from pydantic import ValidationError

from app.auth.authenticator import Authenticator
from app.auth.guards import CHAT_SCOPE, allows
from app.auth.ownership import may_access, owned_conversation
from app.auth.principal import Principal
from app.chat.events import EventKind, error_payload
from app.chat.resume import TokenBuffer
from app.chat.resume.base import not_found
from app.chat.runner import Sink, TurnRunner
from app.core.errors import ApiError, RateLimitedError, UnavailableError
from app.core.metrics import ERRORS
from app.core.settings import ServerSettings, Settings
from app.entrypoints.ws.protocol import (
    ChatPayload,
    ClientMessage,
    ClientType,
    CloseCode,
    InitPayload,
    ProtocolViolation,
    ServerType,
    parse_client_message,
    server_message,
    validation_reason,
)
from app.entrypoints.ws.resume import open_replay, replay
from app.ratelimit import RateLimiter
from app.routing.catalog import ModelCatalog
from conversation import ConversationService, NotFoundError

log = structlog.get_logger(__name__)


class _Closed(Exception):
    """The peer went away."""


def _left(principal: Principal) -> float | None:
    """Seconds until the principal's credential expires; ``None`` for one that never does."""
    if principal.expires_at is None:
        return None
    return max(0.0, principal.expires_at - time.time())


@dataclass(frozen=True, slots=True)
class _SocketTurn:
    """A turn this socket watches: one it started, or one it resumed."""

    message_id: str
    task: asyncio.Task[None]
    started_here: bool


@dataclass(frozen=True, slots=True)
class SocketParts:
    """What a chat socket uses, each injected on its own."""

    settings: ServerSettings
    authenticator: Authenticator
    catalog: ModelCatalog
    token_buffer: TokenBuffer
    turns: TurnRunner | None
    rate_limiter: RateLimiter | None
    conversations: ConversationService


class ChatSocket:
    """One client connection and the turns running on it."""

    def __init__(self, socket: WebSocket[Any, Any, Any], parts: SocketParts) -> None:
        self._socket = socket
        self._parts = parts
        self._settings = parts.settings
        self._send_lock = asyncio.Lock()
        self._turns: dict[str, _SocketTurn] = {}
        self._token = ""

    async def serve(self) -> None:
        await self._socket.accept()
        try:
            principal = await self._handshake()
            if principal is not None:
                await self._loop(principal)
        except _Closed:
            pass
        finally:
            self._leave()

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
        self, kind: ServerType | EventKind, message_id: str | None, payload: dict[str, Any]
    ) -> None:
        async with self._send_lock:
            try:
                await self._socket.send_text(server_message(kind, message_id, payload))
            except Exception as exc:
                raise _Closed from exc

    async def _handshake(self) -> Principal | None:
        """The caller, once ``connection_init`` carried a valid token; ``None`` closes."""
        try:
            raw = await asyncio.wait_for(self._receive(), timeout=self._settings.ws_init_timeout_s)
        except TimeoutError:
            await self._close(CloseCode.INIT_TIMEOUT, "connection_init timeout")
            return None
        try:
            message = parse_client_message(raw, self._settings.ws_max_message_bytes)
            if message.type is not ClientType.CONNECTION_INIT:
                raise ProtocolViolation("the first message must be connection_init")
            init = InitPayload.model_validate(message.payload)
        except (ProtocolViolation, ValidationError) as exc:
            await self._close(CloseCode.BAD_MESSAGE, validation_reason(exc))
            return None
        self._token = init.token
        principal = await self._authenticate()
        if principal is not None:
            await self._send(ServerType.CONNECTION_ACK, None, {})
        return principal

    async def _authenticate(self) -> Principal | None:
        """The caller of the socket's token, checked now; ``None`` once closed."""
        limiter = self._parts.rate_limiter
        client = self._socket.client
        address = client.host if client is not None else None
        try:
            if limiter is not None:
                await limiter.admit_address(address)
        except RateLimitedError as exc:
            await self._close(CloseCode.RATE_LIMITED, exc.message)
            return None
        try:
            principal = await self._parts.authenticator.authenticate(self._token)
        except ApiError as exc:
            if limiter is not None:
                await limiter.on_auth_failure(address)
            await self._close(CloseCode.UNAUTHORIZED, exc.message)
            return None
        if not allows(principal, (CHAT_SCOPE,)):
            await self._close(CloseCode.FORBIDDEN, f"The {CHAT_SCOPE!r} scope is needed.")
            return None
        return principal

    async def _loop(self, principal: Principal) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(self._receive(), timeout=_left(principal))
            except TimeoutError:
                await self._close(CloseCode.UNAUTHORIZED, "The token has expired.")
                return
            try:
                message = parse_client_message(raw, self._settings.ws_max_message_bytes)
            except ProtocolViolation as exc:
                await self._close(CloseCode.BAD_MESSAGE, str(exc))
                return
            if message.type in (ClientType.CHAT, ClientType.RESUME):
                # A revoked key, a disabled user or an expired token stops here.
                checked = await self._authenticate()
                if checked is None:
                    return
                principal = checked
            await self._dispatch(message, principal)

    async def _dispatch(self, message: ClientMessage, principal: Principal) -> None:
        # NOTE: ``parse_client_message`` refuses a chat, cancel or resume without an id.
        turn_id = message.id or ""
        if message.type is ClientType.PING:
            await self._send(ServerType.PONG, message.id, message.payload)
        elif message.type is ClientType.CHAT:
            await self._start_turn(turn_id, message.payload, principal)
        elif message.type is ClientType.CANCEL:
            await self._cancel(turn_id, principal)
        elif message.type is ClientType.RESUME:
            await self._resume(turn_id, message.payload, principal)
        else:
            await self._error(
                message.id, "already_initialised", "connection_init was already sent."
            )

    async def _start_turn(
        self, turn_id: str, payload: dict[str, Any], principal: Principal
    ) -> None:
        if not await self._has_room(turn_id):
            return
        try:
            chat = ChatPayload.model_validate(payload)
        except ValidationError as exc:
            await self._error(turn_id, "invalid_request", validation_reason(exc))
            return
        runner = self._parts.turns
        try:
            self._parts.catalog.require(chat.model, principal.tenant_id)
            if runner is None:
                raise UnavailableError("Generation is not enabled on this node.")
            if chat.conversation_id is not None:
                await owned_conversation(self._parts.conversations, principal, chat.conversation_id)
        except NotFoundError as exc:
            await self._error(turn_id, "not_found", str(exc))
            return
        except ApiError as exc:
            await self._error(turn_id, exc.code, exc.message)
            return
        limiter = self._parts.rate_limiter
        if limiter is not None:
            # NOTE: one socket carries several turns, so a refused turn is an ``error``
            # frame (with ``retry_after``); the socket and its other turns go on.
            try:
                await limiter.check(principal)
            except RateLimitedError as exc:
                ERRORS.labels(exc.code).inc()
                await self._send(EventKind.ERROR, turn_id, error_payload(exc))
                return
        request = chat.to_turn_request(principal.tenant_id, chat.conversation_id, principal.subject)
        slot = limiter.turn_slot(principal) if limiter is not None else None
        task = runner.start(request, self._sink(turn_id), slot)
        self._track(turn_id, _SocketTurn(request.message_id, task, started_here=True))

    async def _resume(self, turn_id: str, payload: dict[str, Any], principal: Principal) -> None:
        """Replay a turn after a reconnect and follow it live."""
        if not await self._has_room(turn_id):
            return
        try:
            await self._check_resumable(payload, principal)
            message_id, events = await open_replay(
                self._parts.token_buffer, principal.tenant_id, payload
            )
        except ApiError as exc:
            await self._error(turn_id, exc.code, exc.message)
            return
        task = asyncio.create_task(replay(events, self._sink(turn_id)))
        self._track(turn_id, _SocketTurn(message_id, task, started_here=False))

    async def _check_resumable(self, payload: dict[str, Any], principal: Principal) -> None:
        """Refuse a resume of a turn in someone else's conversation, as "not found".

        NOTE: a turn whose answer is not stored yet cannot be looked up; its
        message id, told only to the client that started it, is then what lets a
        client in (the token buffer still checks the tenant).
        """
        message_id = payload.get("message_id")
        if not isinstance(message_id, str):
            return  # open_replay answers the malformed payload
        conversations = self._parts.conversations
        try:
            message = await conversations.get_message(principal.tenant_id, message_id)
            info = await conversations.get(principal.tenant_id, message.conversation_id)
        except NotFoundError:
            return
        if not may_access(principal, info):
            raise not_found(message_id)

    async def _cancel(self, turn_id: str, principal: Principal) -> None:
        entry = self._turns.get(turn_id)
        if entry is None:
            await self._error(turn_id, "unknown_turn", "No running turn has this id.")
            return
        runner = self._parts.turns
        if runner is not None:
            await runner.cancel(entry.message_id, principal.tenant_id)
        else:
            await self._parts.token_buffer.request_cancel(entry.message_id, principal.tenant_id)

    async def _has_room(self, turn_id: str) -> bool:
        """Whether another turn may start on this socket; answers the client if not."""
        if turn_id in self._turns:
            await self._error(turn_id, "duplicate_id", "A turn with this id is still running.")
            return False
        if len(self._turns) >= self._settings.ws_max_turns:
            await self._error(
                turn_id,
                "too_many_turns",
                f"At most {self._settings.ws_max_turns} turns may run at once on one socket.",
            )
            return False
        return True

    def _track(self, turn_id: str, entry: _SocketTurn) -> None:
        self._turns[turn_id] = entry

        def forget(_: asyncio.Task[None]) -> None:
            if self._turns.get(turn_id) is entry:
                del self._turns[turn_id]

        entry.task.add_done_callback(forget)

    def _sink(self, turn_id: str) -> Sink:
        async def send(kind: EventKind, payload: dict[str, Any]) -> None:
            await self._send(kind, turn_id, payload)

        return send

    async def _error(self, turn_id: str | None, code: str, message: str) -> None:
        ERRORS.labels(code).inc()
        await self._send(EventKind.ERROR, turn_id, {"code": code, "message": message})

    def _leave(self) -> None:
        """The client left: its turns run on (to be resumed), its replays stop."""
        runner = self._parts.turns
        for entry in list(self._turns.values()):
            if entry.started_here and runner is not None:
                runner.detach(entry.message_id)
            else:
                entry.task.cancel()


@websocket("/v1/ws", exclude_from_auth=True)
async def chat_socket(
    socket: WebSocket[Any, Any, Any],
    settings: Settings,
    authenticator: Authenticator,
    catalog: ModelCatalog,
    token_buffer: TokenBuffer,
    turns: TurnRunner | None,
    rate_limiter: RateLimiter | None,
    conversations: ConversationService,
) -> None:
    """Chat over WebSocket (``docs/websocket-protocol.md``; messages in ``protocol.py``)."""
    parts = SocketParts(
        settings.server, authenticator, catalog, token_buffer, turns, rate_limiter, conversations
    )
    await ChatSocket(socket, parts).serve()
