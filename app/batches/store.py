"""Batch jobs in SQL: files, batches and the per-tenant quota (line results in
``results.py``).

Every read and write names the tenant; another tenant's file or batch is "not
found".
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.orm import undefer

from app.batches.lines import output_lines
from app.batches.results import LineResult, ResultStore, delete_results
from app.batches.tables import BatchFileRow, BatchRow
from app.core.errors import ResourceConflictError, ResourceNotFoundError
from kernel.db import lock_key
from kernel.orm import utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime, timedelta

    from sqlalchemy import Select

__all__ = ["FINAL", "UNFINISHED", "BatchStore", "LineResult", "Page", "new_id"]

FINAL = frozenset({"failed", "completed", "expired", "cancelled"})
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: ``file-…``, ``batch_…``, ``batch_req_…``."""
    return prefix + secrets.token_hex(12)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and whether more follow."""

    items: list[T]
    has_more: bool


class BatchStore(ResultStore):
    """Files, batches and results of every tenant, in the SQL database."""

    # Files

    async def put_file(
        self,
        file_id: str,
        tenant_id: str,
        owner: str,
        *,
        purpose: str,
        filename: str,
        content: bytes,
        lines: int,
        ttl: timedelta,
        source: tuple[str, bool] | None = None,
        size: int | None = None,
    ) -> BatchFileRow:
        """Write a file under ``file_id`` (``new_id("file-")`` for a new one), replacing
        what that id held: a batch's results are written under the same id each time.

        Args:
            source: For a batch's output (``True``) or error file, the batch whose
                results are its lines; ``content`` is then empty and ``size`` what
                the lines add up to.
        """
        now = utcnow()
        row = BatchFileRow(
            id=file_id,
            tenant_id=tenant_id,
            owner=owner,
            purpose=purpose,
            filename=filename[:256],
            size=len(content) if size is None else size,
            lines=lines,
            content=content,
            source_batch_id=None if source is None else source[0],
            source_ok=None if source is None else source[1],
            created_at=now,
            expires_at=now + ttl,
        )
        async with self._sessions() as session, session.begin():
            await session.execute(delete(BatchFileRow).where(BatchFileRow.id == file_id))
            session.add(row)
        return row

    async def result_file(self, batch: BatchRow, kind: str, ttl: timedelta) -> str | None:
        """Record the batch's ``output`` or ``error`` file, under an id derived from
        the batch's (the same however often it is written); ``None`` when no result
        goes to it. Its lines are the results, counted here a page at a time."""
        ok = kind == "output"
        lines = size = 0
        async for page in self.result_pages(batch.id, ok=ok):
            lines += len(page)
            size += len(output_lines(page))
        if not lines:
            return None
        target = "file-" + hashlib.sha256(f"{batch.id}:{kind}".encode()).hexdigest()[:24]
        await self.put_file(
            target,
            batch.tenant_id,
            batch.owner,
            purpose="batch_output",
            filename=f"{batch.id}_{kind}.jsonl",
            content=b"",
            lines=lines,
            ttl=ttl,
            source=(batch.id, ok),
            size=size,
        )
        return target

    async def file(
        self, tenant_id: str, file_id: str, *, owner: str | None = None, content: bool = False
    ) -> BatchFileRow:
        """One of the tenant's files (its bytes loaded when ``content``).

        Args:
            owner: Only this subject's (``None``: any of the tenant's, for admins).

        Raises:
            ResourceNotFoundError: No such file for this tenant (and owner).
        """
        query = select(BatchFileRow).where(
            BatchFileRow.id == file_id, BatchFileRow.tenant_id == tenant_id
        )
        if owner is not None:
            query = query.where(BatchFileRow.owner == owner)
        if content:
            query = query.options(undefer(BatchFileRow.content))
        async with self._sessions() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            raise ResourceNotFoundError(f"No such file: {file_id}.", param="file_id")
        return row

    async def files(
        self,
        tenant_id: str,
        owner: str | None,
        *,
        purpose: str | None,
        limit: int,
        after: str | None,
        newest: bool,
    ) -> Page[BatchFileRow]:
        query = select(BatchFileRow).where(BatchFileRow.tenant_id == tenant_id)
        if owner is not None:
            query = query.where(BatchFileRow.owner == owner)
        if purpose is not None:
            query = query.where(BatchFileRow.purpose == purpose)
        if after is not None:
            mark = await self.file(tenant_id, after, owner=owner)
            key = tuple_(BatchFileRow.created_at, BatchFileRow.id)
            at = tuple_(mark.created_at, mark.id)
            query = query.where(key < at if newest else key > at)
        order = (
            (BatchFileRow.created_at.desc(), BatchFileRow.id.desc())
            if newest
            else (BatchFileRow.created_at, BatchFileRow.id)
        )
        async with self._sessions() as session:
            rows = list((await session.execute(query.order_by(*order).limit(limit + 1))).scalars())
        return Page(rows[:limit], len(rows) > limit)

    async def delete_file(self, tenant_id: str, owner: str | None, file_id: str) -> None:
        """Delete one of the tenant's files.

        Raises:
            ResourceNotFoundError: No such file for this tenant.
            ResourceConflictError: An unfinished batch reads it.
        """
        async with self._sessions() as session, session.begin():
            row = await session.get(BatchFileRow, file_id)
            if row is None or row.tenant_id != tenant_id or owner not in (None, row.owner):
                raise ResourceNotFoundError(f"No such file: {file_id}.", param="file_id")
            user = await session.scalar(
                select(BatchRow.id).where(
                    BatchRow.input_file_id == file_id, BatchRow.status.in_(UNFINISHED)
                )
            )
            if user is not None:
                raise ResourceConflictError(
                    f"Batch {user} is still reading this file; cancel it or wait for it.",
                    param="file_id",
                )
            await session.delete(row)
            if row.source_batch_id is not None:
                await session.execute(delete_results(row.source_batch_id, row.source_ok))

    # Batches

    async def add_batch(self, row: BatchRow, *, max_lines: int, max_tokens: int) -> bool:
        """Store a new batch unless the tenant's unfinished ones would pass a quota.

        Returns:
            ``False`` (nothing stored) when the quota would be passed.
        """
        async with self._sessions() as session, session.begin():
            await lock_key(session, f"batches:{row.tenant_id}")
            lines, tokens = (await session.execute(_queued(row.tenant_id))).one()
            if lines + row.total > max_lines or tokens + row.queued_tokens > max_tokens:
                return False
            session.add(row)
        return True

    async def queued(self, tenant_id: str) -> tuple[int, int]:
        """Lines and tokens the tenant's unfinished batches still hold."""
        async with self._sessions() as session:
            lines, tokens = (await session.execute(_queued(tenant_id))).one()
        return int(lines), int(tokens)

    async def batch(
        self, tenant_id: str | None, batch_id: str, owner: str | None = None
    ) -> BatchRow:
        """One batch: the tenant's (and ``owner``'s, when given), or anyone's when
        ``tenant_id`` is ``None`` (the runner).

        Raises:
            ResourceNotFoundError: No such batch for this tenant (and owner).
        """
        async with self._sessions() as session:
            row = await session.get(BatchRow, batch_id)
        if (
            row is None
            or (tenant_id is not None and row.tenant_id != tenant_id)
            or owner not in (None, row.owner)
        ):
            raise ResourceNotFoundError(f"No such batch: {batch_id}.", param="batch_id")
        return row

    async def batches(
        self, tenant_id: str, owner: str | None, *, limit: int, after: str | None
    ) -> Page[BatchRow]:
        query = select(BatchRow).where(BatchRow.tenant_id == tenant_id)
        if owner is not None:
            query = query.where(BatchRow.owner == owner)
        if after is not None:
            mark = await self.batch(tenant_id, after, owner)
            query = query.where(
                tuple_(BatchRow.created_at, BatchRow.id) < tuple_(mark.created_at, mark.id)
            )
        query = query.order_by(BatchRow.created_at.desc(), BatchRow.id.desc()).limit(limit + 1)
        async with self._sessions() as session:
            rows = list((await session.execute(query)).scalars())
        return Page(rows[:limit], len(rows) > limit)

    async def unfinished(self) -> list[str]:
        """Ids of every batch not in a final state, oldest first (to re-queue them)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(BatchRow.id)
                .where(BatchRow.status.in_(UNFINISHED))
                .order_by(BatchRow.created_at)
            )
        return list(rows.scalars())

    async def beat(self, batch_id: str, *, running: bool = True) -> None:
        """Show that a worker runs the batch now (or, ``running=False``, no longer)."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id)
                .values(heartbeat_at=utcnow() if running else None)
            )

    async def waiting_besides(self, tenant_id: str, *, stale_before: datetime) -> bool:
        """Whether another tenant has an unfinished batch that no worker runs: never
        started, given way, or its worker's last heartbeat is before ``stale_before``."""
        query = (
            select(BatchRow.id)
            .where(
                BatchRow.status.in_(UNFINISHED),
                BatchRow.tenant_id != tenant_id,
                or_(BatchRow.heartbeat_at.is_(None), BatchRow.heartbeat_at < stale_before),
            )
            .limit(1)
        )
        async with self._sessions() as session:
            return (await session.execute(query)).first() is not None

    async def move(
        self, batch_id: str, to: str, *, only_from: Sequence[str], **values: Any
    ) -> bool:
        """Set the batch's status to ``to`` (and its ``<to>_at``) if it is in ``only_from``.

        Returns:
            Whether it moved (a concurrent change, a cancel say, may have won).
        """
        now = utcnow()
        stamp = {f"{to}_at": now} if hasattr(BatchRow, f"{to}_at") else {}
        async with self._sessions() as session, session.begin():
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status.in_(only_from))
                .values(status=to, **stamp, **values)
            )
        return bool(moved.rowcount)  # type: ignore[attr-defined]

    # Expiry

    async def overdue(self, now: datetime) -> list[str]:
        """Unfinished batches whose completion window has passed."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(BatchRow.id).where(
                    BatchRow.status.in_(UNFINISHED), BatchRow.expires_at <= now
                )
            )
        return list(rows.scalars())

    async def delete_expired_files(self, now: datetime) -> int:
        """Delete files past their ``expires_at`` that no unfinished batch reads."""
        busy = select(BatchRow.input_file_id).where(BatchRow.status.in_(UNFINISHED))
        async with self._sessions() as session, session.begin():
            results = await session.execute(
                select(BatchFileRow.source_batch_id, BatchFileRow.source_ok).where(
                    BatchFileRow.expires_at <= now, BatchFileRow.source_batch_id.is_not(None)
                )
            )
            for batch_id, ok in results.all():
                await session.execute(delete_results(str(batch_id), ok))
            gone = await session.execute(
                delete(BatchFileRow).where(
                    BatchFileRow.expires_at <= now, BatchFileRow.id.not_in(busy)
                )
            )
        return int(gone.rowcount)  # type: ignore[attr-defined]


def _queued(tenant_id: str) -> Select[int, int]:
    """Lines left and tokens held by the tenant's unfinished batches."""
    left = BatchRow.total - BatchRow.completed - BatchRow.failed
    return select(
        func.coalesce(func.sum(left), 0), func.coalesce(func.sum(BatchRow.queued_tokens), 0)
    ).where(BatchRow.tenant_id == tenant_id, BatchRow.status.in_(UNFINISHED))
