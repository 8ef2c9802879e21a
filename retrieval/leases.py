"""A worker's hold on a stored upload, in SQL: take it (one attempt counted), renew, release.

The queue hands an entry to one consumer at a time, but the same job can be in the
queue twice (two processes re-queue what they find missing on start) and a
document can kill every worker that takes it. The row is therefore the guard:
taking a job counts an attempt and marks the document ``indexing`` in one
transaction, lets only one of two concurrent takers through, leaves a document
whose lease (``updated_at``, renewed by the worker) is fresh to its worker, and
says when a document is past the attempts allowed (its worker then removes its
points and fails it, ``too_many_attempts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update

from kernel.orm import utcnow
from retrieval.models import DocumentRow, DocumentUploadRow
from retrieval.repository import StoredUpload, to_info
from retrieval.types import DocumentStatus

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from retrieval.types import IngestJob


class Taken(Enum):
    """What ``start_indexing`` found."""

    STARTED = "started"
    """This worker indexes the upload now (one more attempt counted)."""
    GONE = "gone"
    """Deleted, superseded by a newer upload, or already finished: drop the entry."""
    BUSY = "busy"
    """A live worker indexes it: leave the entry; it comes back after the idle time."""
    EXHAUSTED = "exhausted"
    """Past the attempts allowed: the worker drops its points, then fails it."""


@dataclass(frozen=True, slots=True)
class Take:
    """``start_indexing``'s answer: what it found, the upload if started, and attempts."""

    taken: Taken
    upload: StoredUpload | None = None
    attempts: int = 0


class UploadLeases:
    """Workers' transitions of stored uploads; each method is one short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def start_indexing(
        self, job: IngestJob, *, max_attempts: int, stale_before: datetime
    ) -> Take:
        """Take the job's upload for indexing: mark it INDEXING and count the attempt.

        One transaction, opened by a conditional UPDATE of the document's row: it
        matches only a row of the job's hash that is not INDEXING, or whose lease
        (``updated_at``, renewed by ``touch``) is older than ``stale_before`` (its
        worker died). Of two workers handed the same job at once, the second's
        UPDATE runs after the first commits (the row's lock on PostgreSQL, the one
        writer on SQLite) and matches nothing, so only one starts it. Past
        ``max_attempts`` it answers EXHAUSTED and changes nothing: the worker removes
        the document's points and then ends it ``failed`` (``too_many_attempts``), so
        a document that kills its worker is not handed out for ever.
        """
        async with self._sessions() as session:
            upload = await session.get(DocumentUploadRow, job.document_id)
            if upload is None or upload.content_hash != job.content_hash:
                return Take(Taken.GONE)
            taken = await session.execute(
                update(DocumentRow)
                .where(
                    DocumentRow.id == job.document_id,
                    DocumentRow.tenant_id == job.tenant_id,
                    DocumentRow.content_hash == job.content_hash,
                    or_(
                        DocumentRow.status != DocumentStatus.INDEXING.value,
                        DocumentRow.updated_at <= stale_before,
                    ),
                )
                .values(status=DocumentStatus.INDEXING.value, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                seen = upload.attempts
                await session.rollback()
                # Another worker holds it, or it changed meanwhile: look again later.
                return Take(Taken.BUSY, attempts=seen)
            # NOTE: read again inside the write transaction, which now holds the row.
            await session.refresh(upload)
            row = await session.get(DocumentRow, job.document_id, populate_existing=True)
            if row is None or upload.content_hash != job.content_hash:  # pragma: no cover
                await session.rollback()
                return Take(Taken.GONE)
            upload.attempts += 1
            if upload.attempts > max_attempts:
                # NOTE: nothing is written here. The worker drops what the attempts wrote
                # to the vector store first and then fails the document; failed here, it
                # was terminal while its points were still searchable, and for good if
                # the process died before dropping them.
                attempts = upload.attempts
                await session.rollback()
                return Take(Taken.EXHAUSTED, attempts=attempts)
            attempts, data, content_type = upload.attempts, upload.data, upload.content_type
            await session.commit()
            await session.refresh(row)
            return Take(Taken.STARTED, StoredUpload(to_info(row), data, content_type), attempts)

    async def touch(self, job: IngestJob) -> bool:
        """Renew the lease of a document being indexed; whether it is still so."""
        async with self._sessions() as session:
            result = await session.execute(
                update(DocumentRow)
                .where(
                    DocumentRow.id == job.document_id,
                    DocumentRow.content_hash == job.content_hash,
                    DocumentRow.status == DocumentStatus.INDEXING.value,
                )
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def requeue_abandoned(self) -> int:
        """Mark QUEUED every INDEXING document with a stored upload; how many.

        Only for an in-process queue on start: its jobs died with the last
        process, and no other process works them.
        """
        async with self._sessions() as session:
            result = await session.execute(
                update(DocumentRow)
                .where(
                    DocumentRow.status == DocumentStatus.INDEXING.value,
                    DocumentRow.id.in_(select(DocumentUploadRow.document_id)),
                )
                .values(status=DocumentStatus.QUEUED.value)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
