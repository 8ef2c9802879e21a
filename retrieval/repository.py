"""SQL access to ``documents`` and ``document_uploads`` rows, returning domain types.

Reads a caller can trigger are always scoped to one tenant; the worker-side methods
(``finish``, ``is_current``, and ``retrieval.leases`` for taking a job) take a
document id and a content hash that came from a queue entry this service wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from kernel.cursor import decode_cursor, encode_cursor
from kernel.ids import new_id
from retrieval.errors import (
    DocumentNotFoundError,
    InvalidRequestError,
    QuotaExceededError,
)
from retrieval.models import DocumentRow, DocumentUploadRow
from retrieval.quotas import check_quota_in, lock_tenant
from retrieval.types import DocumentInfo, DocumentPage, DocumentStatus, IngestionQuota, IngestJob

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """A stored upload, as a worker reads it."""

    document: DocumentInfo
    data: bytes
    content_type: str | None


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``claim`` did: the row now, whether it is new, and the row before."""

    document: DocumentInfo
    created: bool
    previous: DocumentInfo | None

    @property
    def document_id(self) -> str:
        return self.document.id


class DocumentRepository:
    """Reads and writes document rows; each method is one short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def find_by_name(self, tenant_id: str, collection: str, name: str) -> DocumentInfo | None:
        async with self._sessions() as session:
            row = await session.scalar(_by_name(tenant_id, collection, name))
            return to_info(row) if row is not None else None

    async def claim(
        self,
        tenant_id: str,
        collection: str,
        name: str,
        *,
        content_type: str,
        content_hash: str,
        size_bytes: int,
        status: DocumentStatus = DocumentStatus.INDEXING,
        upload: bytes | None = None,
        upload_content_type: str | None = None,
        quota: IngestionQuota | None = None,
    ) -> Claim:
        """Create or update the row for a new version, with ``status``.

        With ``upload``, the bytes are stored in ``document_uploads`` in the same
        transaction; any earlier pending upload of the document is dropped either
        way (its queue entry is then stale and skipped). With ``quota`` (the
        default; a tenant's own row in ``ingestion_quotas`` overrides it), the
        tenant's totals after the change are checked in the same transaction,
        which is rolled back when they pass it.

        Returns:
            The document id, whether the row was created, and the row before.

        Raises:
            QuotaExceededError: The tenant would pass its quota; nothing was written.
        """
        fields = {
            "content_type": content_type,
            "content_hash": content_hash,
            "size_bytes": size_bytes,
            "status": status.value,
            "error": None,
            "error_code": None,
        }
        for _ in range(2):
            async with self._sessions() as session:
                if quota is not None:
                    await lock_tenant(session, tenant_id)
                row = await session.scalar(_by_name(tenant_id, collection, name))
                previous = to_info(row) if row is not None else None
                if row is not None:
                    for key, value in fields.items():
                        setattr(row, key, value)
                    document_id = row.id
                else:
                    document_id = new_id()
                    session.add(
                        DocumentRow(
                            id=document_id,
                            tenant_id=tenant_id,
                            collection=collection,
                            name=name,
                            chunk_count=0,
                            **fields,
                        )
                    )
                try:
                    await session.flush()  # the document row first (foreign key)
                    if quota is not None:
                        await check_quota_in(session, tenant_id, name, quota)
                    await session.execute(
                        delete(DocumentUploadRow).where(
                            DocumentUploadRow.document_id == document_id
                        )
                    )
                    if upload is not None:
                        session.add(
                            DocumentUploadRow(
                                document_id=document_id,
                                content_hash=content_hash,
                                content_type=upload_content_type,
                                data=upload,
                            )
                        )
                    await session.commit()
                except QuotaExceededError:
                    await session.rollback()
                    raise
                except IntegrityError:
                    # A concurrent ingest of the same name created the row first
                    # (unique constraint): go round again and update it instead.
                    await session.rollback()
                    continue
                current = await session.get(DocumentRow, document_id)
                if current is None:  # deleted in between: let the caller retry
                    break
                await session.refresh(current)
                return Claim(to_info(current), previous is None, previous)
        raise InvalidRequestError(f"{name!r} is being ingested concurrently; retry")

    async def unclaim(self, claim: Claim) -> None:
        """Undo ``claim`` (the job could not be queued): restore or drop the row."""
        async with self._sessions() as session:
            await session.execute(
                delete(DocumentUploadRow).where(DocumentUploadRow.document_id == claim.document_id)
            )
            row = await session.get(DocumentRow, claim.document_id)
            if row is not None and claim.previous is None:
                await session.delete(row)
            elif row is not None and claim.previous is not None:
                before = claim.previous
                row.content_type = before.content_type
                row.content_hash = before.content_hash
                row.size_bytes = before.size_bytes
                row.chunk_count = before.chunk_count
                row.status = before.status.value
                row.error = before.error
                row.error_code = before.error_code
            await session.commit()

    async def is_current(self, job: IngestJob) -> bool:
        """Whether the job's document still exists with the job's content hash."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(DocumentRow.id).where(
                    DocumentRow.id == job.document_id,
                    DocumentRow.content_hash == job.content_hash,
                )
            )
            return found is not None

    async def finish(
        self,
        job: IngestJob,
        status: DocumentStatus,
        *,
        chunk_count: int,
        error: str | None,
        error_code: str | None = None,
        keep_upload: bool = False,
    ) -> DocumentInfo | None:
        """Record the end (or a retryable failure) of the job and drop its upload.

        Returns:
            The updated document, or ``None`` when it was deleted or superseded
            meanwhile (nothing is written then).
        """
        async with self._sessions() as session:
            row = await session.get(DocumentRow, job.document_id)
            if row is None or row.content_hash != job.content_hash:
                return None
            row.status = status.value
            row.chunk_count = chunk_count
            row.error = error
            row.error_code = error_code
            if not keep_upload:
                await session.execute(
                    delete(DocumentUploadRow).where(
                        DocumentUploadRow.document_id == job.document_id,
                        DocumentUploadRow.content_hash == job.content_hash,
                    )
                )
            await session.commit()
            await session.refresh(row)
            return to_info(row)

    async def pending_jobs(self) -> list[IngestJob]:
        """Every stored upload still waiting to be indexed, oldest first."""
        query = (
            select(DocumentRow.tenant_id, DocumentRow.id, DocumentUploadRow.content_hash)
            .join(DocumentUploadRow, DocumentUploadRow.document_id == DocumentRow.id)
            .where(DocumentRow.content_hash == DocumentUploadRow.content_hash)
            .order_by(DocumentUploadRow.created_at)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            IngestJob(tenant_id, document_id, digest) for tenant_id, document_id, digest in rows
        ]

    async def get_many(self, tenant_id: str, document_ids: list[str]) -> list[DocumentInfo]:
        """The tenant's documents among ``document_ids`` (missing ones are left out)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(DocumentRow).where(
                    DocumentRow.tenant_id == tenant_id, DocumentRow.id.in_(document_ids)
                )
            )
            return [to_info(row) for row in rows]

    async def set_status(
        self,
        document_id: str,
        status: DocumentStatus,
        *,
        chunk_count: int,
        error: str | None,
        error_code: str | None = None,
    ) -> DocumentInfo:
        """Record the end of an ingest.

        Raises:
            DocumentNotFoundError: The row was deleted meanwhile.
        """
        async with self._sessions() as session:
            row = await session.get(DocumentRow, document_id)
            if row is None:
                raise DocumentNotFoundError(document_id)
            row.status = status.value
            row.chunk_count = chunk_count
            row.error = error
            row.error_code = error_code
            await session.commit()
            await session.refresh(row)
            return to_info(row)

    async def get(self, tenant_id: str, document_id: str) -> DocumentInfo:
        """The tenant's document; another tenant's is ``DocumentNotFoundError`` too."""
        async with self._sessions() as session:
            return to_info(await _owned(session, tenant_id, document_id))

    async def delete(self, tenant_id: str, document_id: str) -> None:
        async with self._sessions() as session:
            row = await _owned(session, tenant_id, document_id)
            # Explicit rather than relying on ON DELETE CASCADE (a SQLite connection
            # made elsewhere may lack PRAGMA foreign_keys).
            await session.execute(
                delete(DocumentUploadRow).where(DocumentUploadRow.document_id == document_id)
            )
            await session.delete(row)
            await session.commit()

    async def page(
        self, tenant_id: str, collection: str | None, limit: int, cursor: str | None
    ) -> DocumentPage:
        """Newest first, ties broken by id, keyset-paginated (see ``kernel.cursor``).

        Raises:
            InvalidCursorError: A cursor this service did not issue.
        """
        query = select(DocumentRow).where(DocumentRow.tenant_id == tenant_id)
        if collection is not None:
            query = query.where(DocumentRow.collection == collection)
        if cursor is not None:
            created_at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    DocumentRow.created_at < created_at,
                    and_(DocumentRow.created_at == created_at, DocumentRow.id < last_id),
                )
            )
        query = query.order_by(DocumentRow.created_at.desc(), DocumentRow.id.desc())
        async with self._sessions() as session:
            rows = list(await session.scalars(query.limit(limit + 1)))
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last.created_at, last.id)
        return DocumentPage(items=[to_info(row) for row in rows[:limit]], next_cursor=next_cursor)


def to_info(row: DocumentRow) -> DocumentInfo:
    """The domain view of a row."""
    return DocumentInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        collection=row.collection,
        name=row.name,
        content_type=row.content_type,
        content_hash=row.content_hash,
        size_bytes=row.size_bytes,
        chunk_count=row.chunk_count,
        status=DocumentStatus(row.status),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        error_code=row.error_code,
    )


async def _owned(session: AsyncSession, tenant_id: str, document_id: str) -> DocumentRow:
    row = await session.scalar(
        select(DocumentRow).where(DocumentRow.id == document_id, DocumentRow.tenant_id == tenant_id)
    )
    if row is None:
        raise DocumentNotFoundError(document_id)
    return row


def _by_name(tenant_id: str, collection: str, name: str) -> Select[DocumentRow]:
    return select(DocumentRow).where(
        DocumentRow.tenant_id == tenant_id,
        DocumentRow.collection == collection,
        DocumentRow.name == name,
    )
