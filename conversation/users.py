"""Users: the people of a tenant, known by their identity provider's ``sub``.

A user row is what a tenant's admin decided about a person: their role and whether
they are disabled. Tokens name users; the rows need not exist before a token is
used (the API layer decides whether they must).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from conversation.errors import ConflictError, InvalidInputError, NotFoundError
from conversation.models import TenantRow, UserRow
from conversation.types import PRINCIPAL_ROLES, PrincipalRole, UserInfo
from kernel.orm import utcnow

if TYPE_CHECKING:
    import builtins

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

MAX_SUBJECT_CHARS = 255
MAX_USER_NAME_CHARS = 200


def check_role(role: str) -> PrincipalRole:
    """Returns ``role`` if it is a principal role.

    Raises:
        InvalidInputError: Any other value.
    """
    for known in PRINCIPAL_ROLES:
        if role == known:
            return known
    raise InvalidInputError(f"role must be one of {', '.join(PRINCIPAL_ROLES)}")


def _clean_subject(subject: str) -> str:
    cleaned = subject.strip()
    if not cleaned or len(cleaned) > MAX_SUBJECT_CHARS:
        raise InvalidInputError(f"a subject has 1 to {MAX_SUBJECT_CHARS} characters")
    return cleaned


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    cleaned = name.strip()
    if len(cleaned) > MAX_USER_NAME_CHARS:
        raise InvalidInputError(f"a user name has at most {MAX_USER_NAME_CHARS} characters")
    return cleaned or None


class UserService:
    """Creates, lists, updates and looks up a tenant's users."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self, tenant_id: str, subject: str, role: str = "user", name: str | None = None
    ) -> UserInfo:
        """Records a user of a tenant.

        Args:
            tenant_id: The owner.
            subject: The identity provider's ``sub`` (unique within the tenant).
            role: ``user``, ``labeler`` or ``admin``.
            name: A display name.

        Raises:
            NotFoundError: No such tenant.
            ConflictError: The tenant already has a user with this subject.
            InvalidInputError: An empty or too long subject or name, or an unknown role.
        """
        row = UserRow(
            tenant_id=tenant_id,
            subject=_clean_subject(subject),
            name=_clean_name(name),
            role=check_role(role),
        )
        try:
            async with self._sessions() as session, session.begin():
                if await session.get(TenantRow, tenant_id) is None:
                    raise NotFoundError("tenant not found")
                session.add(row)
        except IntegrityError as exc:
            raise ConflictError("the tenant already has a user with this subject") from exc
        return row.to_info()

    async def get(self, tenant_id: str, user_id: str) -> UserInfo:
        """Returns one of the tenant's users.

        Raises:
            NotFoundError: No such user for this tenant.
        """
        async with self._sessions() as session:
            return (await self._tenant_user(session, tenant_id, user_id)).to_info()

    async def list(self, tenant_id: str) -> builtins.list[UserInfo]:
        """Returns the tenant's users, disabled ones included, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(UserRow)
                .where(UserRow.tenant_id == tenant_id)
                .order_by(UserRow.created_at, UserRow.id)
            )
            return [row.to_info() for row in rows]

    async def update(
        self,
        tenant_id: str,
        user_id: str,
        *,
        role: str | None = None,
        name: str | None = None,
        disabled: bool | None = None,
    ) -> UserInfo:
        """Changes a user's role, name or disabled state; ``None`` leaves a field alone.

        Disabling a disabled user keeps the first ``disabled_at``.

        Raises:
            NotFoundError: No such user for this tenant.
            InvalidInputError: An unknown role or a too long name.
        """
        new_role = None if role is None else check_role(role)
        new_name = _clean_name(name)
        async with self._sessions() as session, session.begin():
            row = await self._tenant_user(session, tenant_id, user_id)
            if new_role is not None:
                row.role = new_role
            if name is not None:
                row.name = new_name
            if disabled is True and row.disabled_at is None:
                row.disabled_at = utcnow()
            elif disabled is False:
                row.disabled_at = None
        return row.to_info()

    async def lookup(self, tenant_id: str, subject: str) -> UserInfo | None:
        """Returns the tenant's user with this subject, or None if there is none.

        One query answers both "does the tenant exist" and "is the subject a user".

        Raises:
            NotFoundError: No such tenant.
        """
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(TenantRow.id, UserRow)
                    .outerjoin(
                        UserRow,
                        and_(UserRow.tenant_id == TenantRow.id, UserRow.subject == subject),
                    )
                    .where(TenantRow.id == tenant_id)
                )
            ).first()
        if found is None:
            raise NotFoundError("tenant not found")
        user: UserRow | None = found[1]
        return None if user is None else user.to_info()

    @staticmethod
    async def _tenant_user(session: AsyncSession, tenant_id: str, user_id: str) -> UserRow:
        row = await session.scalar(
            select(UserRow).where(UserRow.id == user_id, UserRow.tenant_id == tenant_id)
        )
        if row is None:
            raise NotFoundError("user not found")
        return row
