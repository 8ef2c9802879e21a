"""Server-side console sessions: a random cookie names a record in a store.

The record (who signed in, their role, the CSRF token of their forms, when they
signed in) lives in Redis when one is configured, so every API node knows it and a
restart keeps it, and in this process's memory otherwise (Litestar's ``Store``
implementations). The store is keyed by the SHA-256 of the cookie, so reading the
store gives no usable cookie. A session ends when unused for ``idle_s`` (the store's
expiry, renewed by each request), ``absolute_s`` after sign-in whatever happens,
and at sign-out, after which the same cookie is refused everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar.stores.base import Store

    from app.console.accounts import ConsoleUser

__all__ = ["COOKIE", "ConsoleSession", "SessionStore"]

COOKIE = "ragserve_console"
"""The session cookie's name."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """One signed-in console user, as every console request sees them."""

    user_id: str
    tenant_id: str
    username: str
    role: str
    platform_admin: bool
    csrf: str
    """The token every form and state-changing request of this session carries."""
    created_at: float
    """Unix time of sign-in."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def labeler(self) -> str:
        """How labels and leases name this person."""
        return f"console:{self.user_id}"

    def csrf_ok(self, token: str | None) -> bool:
        """Whether a submitted CSRF token is this session's (compared in constant time)."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Sign-in, per-request lookup and sign-out of console sessions."""

    def __init__(self, store: Store, *, idle_s: float, absolute_s: float) -> None:
        """Args:
        store: Where the records live (Redis or memory).
        idle_s: A session unused this long ends.
        absolute_s: A session ends this long after sign-in.
        """
        self._store = store
        self._idle_s = max(1, int(idle_s))
        self._absolute_s = absolute_s

    async def create(self, user: ConsoleUser) -> tuple[str, ConsoleSession]:
        """A new session for a user who just signed in: the cookie value and the record."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(
            user_id=user.id,
            tenant_id=user.tenant_id,
            username=user.username,
            role=user.role,
            platform_admin=user.platform_admin,
            csrf=secrets.token_urlsafe(32),
            created_at=time.time(),
        )
        await self._store.set(_key(token), json.dumps(asdict(session)), expires_in=self._idle_s)
        return token, session

    async def load(self, token: str | None) -> ConsoleSession | None:
        """The live session a cookie names, renewing its idle expiry; ``None`` when
        there is none (never was, signed out, idle or past its absolute lifetime)."""
        if not token or len(token) > 128:
            return None
        raw = await self._store.get(_key(token), renew_for=self._idle_s)
        if raw is None:
            return None
        session = ConsoleSession(**json.loads(raw))
        if time.time() - session.created_at > self._absolute_s:
            await self._store.delete(_key(token))
            return None
        return session

    async def destroy(self, token: str | None) -> None:
        """Sign out: the cookie names nothing from now on."""
        if token:
            await self._store.delete(_key(token))
