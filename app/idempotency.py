"""``Idempotency-Key``: a retried POST returns the first request's result.

A client that lost the answer to a chat turn or an upload (a dropped connection,
a timeout) sends the same request again with the same key; the second request
gets the first one's result instead of a second turn or document. A key belongs
to one tenant and one route, remembers a hash of its request (the same key with
another body is refused with 422) and expires after ``ttl_s`` (24 hours).

A key is claimed in SQL before the work starts, so two concurrent retries cannot
both run: the second is told 409 while the first is in flight. A request that
fails before it produced a result releases its key, so the retry can run.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import JSON, Index, Integer, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.core.errors import ResourceConflictError, UnprocessableError
from kernel.orm import Base, utcnow
from kernel.tasks import stop_task

if TYPE_CHECKING:
    from litestar import Request
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = [
    "HEADER",
    "MAX_KEY_CHARS",
    "Claim",
    "IdempotencyKeyRow",
    "IdempotencyStore",
    "idempotency_key",
    "request_hash",
]

log = structlog.get_logger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_PURGE_EVERY_S = 3600.0


class IdempotencyKeyRow(Base):
    """One claimed key: pending while ``status_code`` is NULL, then the stored result."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    route: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 hex of the request body: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found: ``None`` fields for a fresh key, else the first result."""

    status_code: int | None = None
    response: dict[str, Any] | None = None

    @property
    def replay(self) -> bool:
        """The key was used before: answer with ``response`` instead of doing the work."""
        return self.status_code is not None


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    """The request's ``Idempotency-Key``, or ``None`` when it sent none.

    Raises:
        UnprocessableError: An empty or over-long key.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS:
        raise UnprocessableError(f"{HEADER} must be 1 to {MAX_KEY_CHARS} characters.")
    return key


def request_hash(*parts: bytes | str) -> str:
    """A stable fingerprint of what a request asked for."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class IdempotencyStore:
    """Claims keys, stores their results and forgets them once expired."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float = DEFAULT_TTL_S,
        purge_every_s: float = DEFAULT_PURGE_EVERY_S,
    ) -> None:
        """Args:
        sessions: Sessions on the database of record.
        ttl_s: How long a key is remembered after its first use.
        purge_every_s: Seconds between purges of expired keys once started.
        """
        self._sessions = sessions
        self._ttl = timedelta(seconds=ttl_s)
        self._purge_every_s = purge_every_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Purge expired keys now and every ``purge_every_s`` in the background.

        Every process purges; the deletes are idempotent, so several API
        processes on one database only repeat each other's work.
        """
        await self._purge_logged()
        self._task = asyncio.create_task(self._purge_loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def claim(self, tenant_id: str, route: str, key: str, fingerprint: str) -> Claim:
        """Claim ``key`` for a request, or find the result of its first use.

        Returns:
            An empty claim when this request may run (call :meth:`complete` or
            :meth:`release` afterwards); a replay claim with the first result.

        Raises:
            UnprocessableError: The key was used with a different request.
            ConflictError: The first request with this key is still running.
        """
        for _ in range(3):
            now = utcnow()
            try:
                async with self._sessions() as session, session.begin():
                    session.add(
                        IdempotencyKeyRow(
                            tenant_id=tenant_id,
                            route=route,
                            key=key,
                            request_hash=fingerprint,
                            created_at=now,
                            expires_at=now + self._ttl,
                        )
                    )
                return Claim()
            except IntegrityError:
                pass
            async with self._sessions() as session, session.begin():
                row = await session.get(IdempotencyKeyRow, (tenant_id, route, key))
                if row is None:
                    continue
                if row.expires_at <= now:
                    await session.delete(row)
                    continue
                if row.request_hash != fingerprint:
                    raise UnprocessableError(
                        f"This {HEADER} was already used with a different request; "
                        "send a new key for a new request."
                    )
                if row.status_code is None:
                    raise ResourceConflictError(
                        f"A request with this {HEADER} is still in progress; retry later."
                    )
                return Claim(row.status_code, row.response)
        raise ResourceConflictError(f"This {HEADER} is contended; retry later.")

    async def complete(
        self, tenant_id: str, route: str, key: str, status_code: int, response: dict[str, Any]
    ) -> None:
        """Store the result a retry with ``key`` will get."""
        async with self._sessions() as session, session.begin():
            row = await session.get(IdempotencyKeyRow, (tenant_id, route, key))
            if row is not None:
                row.status_code, row.response = status_code, response

    async def release(self, tenant_id: str, route: str, key: str) -> None:
        """Forget a claim whose request failed, so that a retry runs it again."""
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    delete(IdempotencyKeyRow).where(
                        IdempotencyKeyRow.tenant_id == tenant_id,
                        IdempotencyKeyRow.route == route,
                        IdempotencyKeyRow.key == key,
                        IdempotencyKeyRow.status_code.is_(None),
                    )
                )
        except Exception as exc:
            # NOTE: a key left pending only makes its retries wait for expiry (409).
            log.warning("idempotency_release_failed", route=route, error=repr(exc))

    async def purge(self) -> int:
        """Delete every expired key; returns how many went."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at <= utcnow())
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _purge_logged(self) -> None:
        try:
            count = await self.purge()
        except Exception as exc:
            # NOTE: the database may be away; expired keys only wait for the next purge.
            log.warning("idempotency_purge_failed", error=repr(exc))
            return
        if count:
            log.info("idempotency_keys_purged", count=count)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self._purge_every_s)
            await self._purge_logged()
