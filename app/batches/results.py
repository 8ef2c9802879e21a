"""A batch's line results in SQL: each stored once, read back a page at a time.

A line's result is inserted once per (batch, ``custom_id``): the batch's counts
move only when the insert did, so a line answered twice by an at-least-once
worker is counted and stored once. The results are also the lines of the batch's
output and error files (``batch_files.source_batch_id``): written out as those
are read, so neither finishing a batch nor downloading its output holds 50,000
of them in memory, and deleting the file deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.batches.tables import BatchResultRow, BatchRow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy import ColumnElement, Delete
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["LineResult", "ResultStore", "delete_results"]


@dataclass(frozen=True, slots=True)
class LineResult:
    """What one line came to: a response (any status) or an error without one."""

    line: int
    custom_id: str
    request_id: str
    status_code: int
    body: dict[str, Any] | None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status_code < 300


class ResultStore:
    """The results part of the batch store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def answered(self, batch_id: str) -> set[str]:
        """The ``custom_id`` of every line of the batch that has a result."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(BatchResultRow.custom_id).where(BatchResultRow.batch_id == batch_id)
            )
        return set(rows.scalars())

    async def record(
        self, batch_id: str, result: LineResult, usage: tuple[int, int] = (0, 0)
    ) -> bool:
        """Store a line's result once and count it; ``False`` when it was already stored."""
        try:
            async with self._sessions() as session, session.begin():
                session.add(
                    BatchResultRow(
                        batch_id=batch_id,
                        line=result.line,
                        custom_id=result.custom_id,
                        request_id=result.request_id,
                        status_code=result.status_code,
                        body=result.body,
                        error=result.error,
                    )
                )
                await session.flush()
                done = BatchRow.completed if result.ok else BatchRow.failed
                await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == batch_id)
                    .values(
                        {
                            done: done + 1,
                            BatchRow.prompt_tokens: BatchRow.prompt_tokens + usage[0],
                            BatchRow.completion_tokens: BatchRow.completion_tokens + usage[1],
                        }
                    )
                )
        except IntegrityError:
            return False
        return True

    async def result_pages(
        self, batch_id: str, *, ok: bool, size: int = 500
    ) -> AsyncIterator[list[BatchResultRow]]:
        """The batch's successful (or failed) results in input order, ``size`` at a
        time, so that writing or reading a file of 50,000 never holds them all."""
        after = -1
        while True:
            async with self._sessions() as session:
                rows = await session.execute(
                    select(BatchResultRow)
                    .where(
                        BatchResultRow.batch_id == batch_id,
                        _succeeded(ok),
                        BatchResultRow.line > after,
                    )
                    .order_by(BatchResultRow.line)
                    .limit(size)
                )
            page = list(rows.scalars())
            if not page:
                return
            yield page
            after = page[-1].line


def _succeeded(ok: bool | None) -> ColumnElement[bool]:
    """Results that go to the output file (``ok``) or to the error file."""
    success = (BatchResultRow.status_code >= 200) & (BatchResultRow.status_code < 300)
    success = success & BatchResultRow.error.is_(None)
    return success if ok else ~success


def delete_results(batch_id: str, ok: bool | None) -> Delete:
    """The results behind a batch's output (``ok``) or error file, which is deleted."""
    return delete(BatchResultRow).where(BatchResultRow.batch_id == batch_id, _succeeded(ok))
