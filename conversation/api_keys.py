"""API keys: random secrets shown once and stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update

from conversation.errors import AuthenticationError, InvalidInputError, NotFoundError
from conversation.models import ApiKeyRow, TenantRow
from conversation.types import ApiKeyInfo, CreatedApiKey, RateLimit
from conversation.users import check_role
from kernel.orm import utcnow

if TYPE_CHECKING:
    import builtins
    from collections.abc import Iterable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

SECRET_PREFIX = "rsk_"  # noqa: S105 (the public prefix of every key, not a secret)
PREFIX_CHARS = 12
"""How many leading characters of a secret are kept for display."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is refreshed at most this often, so a request is not a write."""
MAX_KEY_NAME_CHARS = 128
MAX_SCOPES = 32
MAX_SCOPE_CHARS = 64
MAX_RATE_LIMIT_BURST = 1_000_000_000
MAX_RATE_LIMIT_PER_S = 1_000_000_000.0


def hash_secret(secret: str) -> str:
    """Returns the sha256 hex digest under which a secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiKeyService:
    """Creates, checks, lists and revokes a tenant's API keys."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        tenant_id: str,
        name: str = "default",
        scopes: Iterable[str] = ("chat",),
        *,
        role: str = "user",
        rate_limit: RateLimit | None = None,
    ) -> CreatedApiKey:
        """Creates a key for a tenant.

        Args:
            tenant_id: The owner.
            name: A label for people telling keys apart.
            scopes: What the key may do; the API layer decides what each means.
            role: ``user``, ``labeler`` or ``admin``.
            rate_limit: The key's own token bucket; None means the configured default.

        Returns:
            The key's description and its secret, which is shown this once.

        Raises:
            NotFoundError: No such tenant.
            InvalidInputError: An empty or too long name, a bad scope, an unknown
                role or a rate limit that is not positive.
        """
        name = name.strip()
        if not name or len(name) > MAX_KEY_NAME_CHARS:
            raise InvalidInputError(f"a key name has 1 to {MAX_KEY_NAME_CHARS} characters")
        scope_list = list(dict.fromkeys(scopes))
        if len(scope_list) > MAX_SCOPES or any(
            not isinstance(scope, str) or not scope or len(scope) > MAX_SCOPE_CHARS
            for scope in scope_list
        ):
            raise InvalidInputError(
                f"at most {MAX_SCOPES} scopes, each 1 to {MAX_SCOPE_CHARS} characters"
            )
        role = check_role(role)
        if rate_limit is not None and not (
            0 < rate_limit.burst <= MAX_RATE_LIMIT_BURST
            and 0 < rate_limit.rate_per_s <= MAX_RATE_LIMIT_PER_S
        ):
            raise InvalidInputError("a rate limit has a positive burst and a positive rate")
        # NOTE: 32 random bytes make the secret unguessable, so a fast unsalted
        # hash is enough; slow password hashes would only add latency per request.
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        async with self._sessions() as session, session.begin():
            if await session.get(TenantRow, tenant_id) is None:
                raise NotFoundError("tenant not found")
            row = ApiKeyRow(
                tenant_id=tenant_id,
                name=name,
                prefix=secret[:PREFIX_CHARS],
                key_hash=hash_secret(secret),
                scopes=scope_list,
                role=role,
                rate_limit_burst=None if rate_limit is None else rate_limit.burst,
                rate_limit_per_s=None if rate_limit is None else rate_limit.rate_per_s,
            )
            session.add(row)
        return CreatedApiKey(info=row.to_info(), secret=secret)

    async def authenticate(self, secret: str) -> ApiKeyInfo:
        """Returns the live key whose secret this is.

        The secret is hashed before the lookup, so the database compares digests and
        the time taken reveals nothing about how much of a guess was right.

        Raises:
            AuthenticationError: Unknown or revoked key.
        """
        if not secret.startswith(SECRET_PREFIX):
            raise AuthenticationError("invalid API key")
        async with self._sessions() as session:
            row = await session.scalar(
                select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_secret(secret))
            )
            if row is None or row.revoked_at is not None:
                raise AuthenticationError("invalid API key")
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
                # The guard in WHERE keeps concurrent requests from all writing.
                await session.execute(
                    update(ApiKeyRow)
                    .where(
                        ApiKeyRow.id == row.id,
                        or_(
                            ApiKeyRow.last_used_at.is_(None),
                            ApiKeyRow.last_used_at <= now - LAST_USED_RESOLUTION,
                        ),
                    )
                    .values(last_used_at=now)
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
                row.last_used_at = now
            return row.to_info()

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKeyInfo:
        """Revokes a key; revoking a revoked key changes nothing.

        Raises:
            NotFoundError: No such key for this tenant.
        """
        async with self._sessions() as session, session.begin():
            row = await self._tenant_key(session, tenant_id, key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        return row.to_info()

    async def get(self, tenant_id: str, key_id: str) -> ApiKeyInfo:
        """Returns one of the tenant's keys.

        Raises:
            NotFoundError: No such key for this tenant.
        """
        async with self._sessions() as session:
            return (await self._tenant_key(session, tenant_id, key_id)).to_info()

    async def list(self, tenant_id: str) -> builtins.list[ApiKeyInfo]:
        """Returns the tenant's keys, revoked ones included, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.tenant_id == tenant_id)
                .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
            )
            return [row.to_info() for row in rows]

    @staticmethod
    async def _tenant_key(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKeyRow:
        row = await session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.tenant_id == tenant_id)
        )
        if row is None:
            raise NotFoundError("API key not found")
        return row
