"""Tenants: the owners of every other row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from conversation.errors import ConflictError, InvalidInputError, NotFoundError
from conversation.models import TenantRow

if TYPE_CHECKING:
    import builtins

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import TenantInfo

MAX_TENANT_NAME_CHARS = 128


def _clean_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_TENANT_NAME_CHARS:
        raise InvalidInputError(f"a tenant name has 1 to {MAX_TENANT_NAME_CHARS} characters")
    return cleaned


class TenantService:
    """Creates, finds and lists tenants."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ensure(self, name: str) -> TenantInfo:
        """Returns the tenant called ``name``, creating it if there is none.

        Safe when several processes ensure the same name at once: the unique name
        lets one insert win, and the others read the winner's row.

        Args:
            name: The tenant's name (surrounding whitespace is dropped).

        Raises:
            InvalidInputError: The name is empty or too long.
        """
        name = _clean_name(name)
        existing = await self._find_by_name(name)
        if existing is not None:
            return existing
        try:
            async with self._sessions() as session, session.begin():
                row = TenantRow(name=name)
                session.add(row)
            return row.to_info()
        except IntegrityError:
            # Another writer inserted the same name between our read and insert.
            winner = await self._find_by_name(name)
            if winner is None:
                raise
            return winner

    async def create(self, name: str) -> TenantInfo:
        """Creates a tenant called ``name``.

        Raises:
            ConflictError: A tenant already has this name.
            InvalidInputError: The name is empty or too long.
        """
        row = TenantRow(name=_clean_name(name))
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise ConflictError("a tenant with this name already exists") from exc
        return row.to_info()

    async def list(self) -> builtins.list[TenantInfo]:
        """Returns every tenant, oldest first (for platform operators only)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(TenantRow).order_by(TenantRow.created_at, TenantRow.id)
            )
            return [row.to_info() for row in rows]

    async def get(self, tenant_id: str) -> TenantInfo:
        """Returns the tenant with this id.

        Raises:
            NotFoundError: No such tenant.
        """
        async with self._sessions() as session:
            row = await session.get(TenantRow, tenant_id)
        if row is None:
            raise NotFoundError("tenant not found")
        return row.to_info()

    async def get_by_name(self, name: str) -> TenantInfo:
        """Returns the tenant called ``name``.

        Raises:
            NotFoundError: No such tenant.
        """
        found = await self._find_by_name(name.strip())
        if found is None:
            raise NotFoundError("tenant not found")
        return found

    async def _find_by_name(self, name: str) -> TenantInfo | None:
        async with self._sessions() as session:
            row = await session.scalar(select(TenantRow).where(TenantRow.name == name))
        return None if row is None else row.to_info()
