"""Console users: created with a password, signed in by checking its argon2id hash.

NOTE: argon2-cffi's ``PasswordHasher`` (argon2id, its RFC 9106 low-memory profile)
does the hashing; a sign-in for an unknown or disabled user still verifies a
password against a dummy hash, so the time a refusal takes does not tell whether
the username exists. Hashing takes ~50 ms of one core: it runs in a thread.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.console.tables import ConsoleUserRow
from kernel.errors import ConflictError, InvalidInputError, NotFoundError
from kernel.orm import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["MIN_PASSWORD_CHARS", "ConsoleAccounts", "ConsoleRole", "ConsoleUser"]

ConsoleRole = Literal["labeler", "admin"]
ROLES: tuple[ConsoleRole, ...] = ("labeler", "admin")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A person who may sign in to the console."""

    id: str
    tenant_id: str
    username: str
    role: ConsoleRole
    platform_admin: bool
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None


def _user(row: ConsoleUserRow) -> ConsoleUser:
    # NOTE: the CHECK constraint keeps role one of ROLES, so the cast cannot lie.
    return ConsoleUser(
        id=row.id,
        tenant_id=row.tenant_id,
        username=row.username,
        role=cast("ConsoleRole", row.role),
        platform_admin=row.platform_admin,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        disabled_at=row.disabled_at,
    )


class UserExistsError(ConflictError):
    """The tenant already has a console user of that name."""


class UserNotFoundError(NotFoundError):
    """No such console user in this tenant."""


def check_password(password: str) -> None:
    """Refuse a password too short or too long to take.

    Raises:
        InvalidInputError: It is.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInputError(f"A password needs at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInputError(f"A password has at most {MAX_PASSWORD_CHARS} characters.")


class ConsoleAccounts:
    """Create, list, disable and sign in console users, always within one tenant."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], hasher: PasswordHasher | None = None
    ) -> None:
        """Args:
        sessions: Sessions on the database of record.
        hasher: The password hasher (argon2id with its defaults when omitted).
        """
        self._sessions = sessions
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    async def create(
        self,
        tenant_id: str,
        username: str,
        password: str,
        role: ConsoleRole,
        *,
        platform_admin: bool = False,
    ) -> ConsoleUser:
        """Add a console user.

        Raises:
            InvalidInputError: A malformed username, a weak password or an unknown role.
            UserExistsError: The tenant has a user of that name.
        """
        if not _USERNAME.match(username):
            raise InvalidInputError(
                "A username is 1-64 letters, digits or . _ @ -, starting with a letter or digit."
            )
        if role not in ROLES:
            raise InvalidInputError(f"The role is one of {', '.join(ROLES)}.")
        check_password(password)
        row = ConsoleUserRow(
            tenant_id=tenant_id,
            username=username,
            password_hash=await asyncio.to_thread(self._hasher.hash, password),
            role=role,
            platform_admin=platform_admin,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise UserExistsError(f"The tenant already has a console user {username!r}.") from None
        return _user(row)

    async def list(self, tenant_id: str) -> list[ConsoleUser]:
        """The tenant's console users, by name."""
        query = (
            select(ConsoleUserRow)
            .where(ConsoleUserRow.tenant_id == tenant_id)
            .order_by(ConsoleUserRow.username)
        )
        async with self._sessions() as session:
            return [_user(row) for row in (await session.scalars(query)).all()]

    async def get(self, tenant_id: str, user_id: str) -> ConsoleUser:
        """One of the tenant's console users (another tenant's is not found).

        Raises:
            UserNotFoundError: No such user in this tenant.
        """
        async with self._sessions() as session:
            row = await session.get(ConsoleUserRow, user_id)
        if row is None or row.tenant_id != tenant_id:
            raise UserNotFoundError("console user not found")
        return _user(row)

    async def set_disabled(self, tenant_id: str, user_id: str, disabled: bool) -> ConsoleUser:
        """Disable a user (their sessions end at their next request) or enable them again.

        Raises:
            UserNotFoundError: No such user in this tenant.
        """
        async with self._sessions.begin() as session:
            row = await session.get(ConsoleUserRow, user_id)
            if row is None or row.tenant_id != tenant_id:
                raise UserNotFoundError("console user not found")
            row.disabled_at = utcnow() if disabled else None
        return _user(row)

    async def active(self, user_id: str) -> ConsoleUser | None:
        """The user, while it exists and is not disabled (a session's check per request)."""
        async with self._sessions() as session:
            row = await session.get(ConsoleUserRow, user_id)
        if row is None or row.disabled_at is not None:
            return None
        return _user(row)

    async def authenticate(
        self, tenant_id: str, username: str, password: str
    ) -> ConsoleUser | None:
        """The user whose password this is, or ``None`` (unknown, disabled or wrong).

        Takes about as long whichever way it fails.
        """
        query = select(ConsoleUserRow).where(
            ConsoleUserRow.tenant_id == tenant_id, ConsoleUserRow.username == username
        )
        async with self._sessions() as session:
            row = (await session.scalars(query)).one_or_none()
        password = password[:MAX_PASSWORD_CHARS]
        if row is None or row.disabled_at is not None:
            await asyncio.to_thread(self._verify, await self._dummy_hash(), password)
            return None
        if not await asyncio.to_thread(self._verify, row.password_hash, password):
            return None
        async with self._sessions.begin() as session:
            stored = await session.get(ConsoleUserRow, row.id)
            if stored is not None:
                stored.last_login_at = utcnow()
                if self._hasher.check_needs_rehash(stored.password_hash):
                    stored.password_hash = await asyncio.to_thread(self._hasher.hash, password)
        return _user(row)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(self._hasher.hash, "not-a-password-anyone-has")
        return self._dummy
