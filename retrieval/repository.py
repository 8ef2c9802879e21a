"""SQL access to ``documents`` rows, always scoped to one tenant, returning domain types."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from retrieval.errors import DocumentNotFoundError, InvalidRequestError
from retrieval.models import DocumentRow
from retrieval.pagination import as_utc, decode_cursor, encode_cursor
from retrieval.types import DocumentInfo, DocumentPage, DocumentStatus


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
    ) -> tuple[str, bool]:
        """Create or update the row for a new version, marked INDEXING.

        Returns:
            The document id, and whether the row was created (rather than updated).
        """
        fields = {
            "content_type": content_type,
            "content_hash": content_hash,
            "size_bytes": size_bytes,
            "status": DocumentStatus.INDEXING.value,
            "error": None,
        }
        for _ in range(2):
            async with self._sessions() as session:
                row = await session.scalar(_by_name(tenant_id, collection, name))
                if row is not None:
                    for key, value in fields.items():
                        setattr(row, key, value)
                    document_id = row.id
                    await session.commit()
                    return document_id, False
                document_id = str(uuid.uuid4())
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
                    await session.commit()
                except IntegrityError:
                    # A concurrent ingest of the same name created the row first
                    # (unique constraint): go round again and update it instead.
                    await session.rollback()
                    continue
                return document_id, True
        raise InvalidRequestError(f"{name!r} is being ingested concurrently; retry")

    async def set_status(
        self, document_id: str, status: DocumentStatus, *, chunk_count: int, error: str | None
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
            await session.commit()
            await session.refresh(row)
            return to_info(row)

    async def get(self, tenant_id: str, document_id: str) -> DocumentInfo:
        """The tenant's document; another tenant's is ``DocumentNotFoundError`` too."""
        async with self._sessions() as session:
            return to_info(await _owned(session, tenant_id, document_id))

    async def delete(self, tenant_id: str, document_id: str) -> None:
        async with self._sessions() as session:
            await session.delete(await _owned(session, tenant_id, document_id))
            await session.commit()

    async def page(
        self, tenant_id: str, collection: str | None, limit: int, cursor: str | None
    ) -> DocumentPage:
        """Newest first, ties broken by id, keyset-paginated (see ``retrieval.pagination``)."""
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
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
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
