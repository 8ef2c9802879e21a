"""The one declarative base of the project's tables, and its UTC column type.

Every domain package declares its rows on :class:`Base`, so there is one
``MetaData`` (one naming convention) for Alembic to compare with the migrations.
Domain packages never import each other's rows; a table that names another
package's row keeps its id without a foreign key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Dialect, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names, as the migrations in ``alembic/versions`` spell them."""


def utcnow() -> datetime:
    """Returns the current time, UTC-aware."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that always binds and returns UTC-aware values.

    NOTE: SQLite has no time zones: SQLAlchemy stores the wall-clock fields and
    returns naive datetimes. Binding UTC and reading back as UTC keeps SQLite's
    text comparison ordered like PostgreSQL's ``timestamptz`` (keyset pagination
    depends on it) and keeps naive datetimes out of the services.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuses a naive datetime; stores an aware one as UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass a UTC-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Returns a stored value UTC-aware (SQLite's naive ones are UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table; a ``Mapped[datetime]`` column is a ``UtcDateTime``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}
