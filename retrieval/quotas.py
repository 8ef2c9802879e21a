"""Per-tenant ingestion quotas: how many documents, and how many bytes, a tenant stores.

The defaults are configured (``RAGSERVE_INGESTION_QUOTA_*``); a row in
``ingestion_quotas`` overrides them for one tenant. An upload that would take the
tenant past either limit is refused (``QuotaExceededError``, HTTP 409
``quota_exceeded``) before anything of it is stored: ``DocumentIntake`` checks a
whole request first, and ``DocumentRepository.claim`` checks again in the
transaction that stores each document, under a per-tenant lock on PostgreSQL, so
concurrent uploads cannot together pass the quota. Bytes are the uploads' sizes as
sent; a replaced document counts with its new size only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from kernel.db import lock_key
from retrieval.errors import QuotaExceededError
from retrieval.models import DocumentRow, IngestionQuotaRow
from retrieval.types import IngestionQuota

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class QuotaStore:
    """Reads and overrides tenants' quotas and usage; each method is one transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def quota(self, tenant_id: str, default: IngestionQuota) -> IngestionQuota:
        """The tenant's ingestion quota: its own row's limits, else ``default``'s."""
        async with self._sessions() as session:
            return await _quota(session, tenant_id, default)

    async def usage(self, tenant_id: str) -> tuple[int, int]:
        """The tenant's stored documents and their bytes."""
        async with self._sessions() as session:
            return await _usage(session, tenant_id)

    async def set_quota(
        self, tenant_id: str, max_bytes: int | None, max_documents: int | None
    ) -> None:
        """Override the tenant's quota (``None`` keeps the configured default)."""
        async with self._sessions() as session:
            row = await session.get(IngestionQuotaRow, tenant_id)
            if row is None:
                row = IngestionQuotaRow(tenant_id=tenant_id)
                session.add(row)
            row.max_bytes, row.max_documents = max_bytes, max_documents
            await session.commit()


async def lock_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Serialise quota checks of one tenant until the transaction ends."""
    await lock_key(session, f"quota:{tenant_id}")


async def _quota(session: AsyncSession, tenant_id: str, default: IngestionQuota) -> IngestionQuota:
    row = await session.get(IngestionQuotaRow, tenant_id)
    if row is None:
        return default
    return IngestionQuota(
        max_bytes=default.max_bytes if row.max_bytes is None else row.max_bytes,
        max_documents=default.max_documents if row.max_documents is None else row.max_documents,
    )


async def _usage(session: AsyncSession, tenant_id: str) -> tuple[int, int]:
    documents, stored = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(DocumentRow.size_bytes), 0)).where(
                DocumentRow.tenant_id == tenant_id
            )
        )
    ).one()
    return int(documents), int(stored)


async def check_quota_in(
    session: AsyncSession, tenant_id: str, name: str, default: IngestionQuota
) -> None:
    quota = await _quota(session, tenant_id, default)
    documents, stored = await _usage(session, tenant_id)
    check_quota(quota, documents, stored, name)


def check_quota(quota: IngestionQuota, documents: int, stored: int, name: str) -> None:
    """Raise ``QuotaExceededError`` when the totals after an upload pass ``quota``."""
    if documents > quota.max_documents:
        raise QuotaExceededError(
            f"Storing {name!r} would take the tenant to {documents} documents; "
            f"its quota is {quota.max_documents}. Delete documents or ask for a larger quota."
        )
    if stored > quota.max_bytes:
        raise QuotaExceededError(
            f"Storing {name!r} would take the tenant to {stored} bytes of documents; "
            f"its quota is {quota.max_bytes}. Delete documents or ask for a larger quota."
        )
