"""SQL rows of the console: the people who sign in to ``/admin``.

A console user is a person of one tenant with a password, apart from ``users``
(identities a JWT issuer vouches for, which never sign in here): the console's
sign-in is the only place ragserve holds a password hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.ids import new_id
from kernel.orm import Base, utcnow


class ConsoleUserRow(Base):
    __tablename__ = "console_users"
    __table_args__ = (
        CheckConstraint("role IN ('labeler', 'admin')", name="role"),
        # NOTE: tenant_id leads, so this is also the index of "this tenant's users".
        UniqueConstraint("tenant_id", "username", name="uq_console_users_tenant_username"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))
    # An argon2id PHC string (``$argon2id$v=19$m=...``); never the password.
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    # Sees and manages every tenant and the shared model registry.
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)
