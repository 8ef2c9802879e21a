"""The Files and Batches APIs' work: upload, create, read, list, cancel.

A batch is stored ``validating`` with its lines counted and their tokens
estimated (the per-tenant quota counts both), then queued; a worker of any node
(``runner.py``) takes it from there. The embedded queue dies with its process:
``BatchRunner.start`` re-queues every unfinished batch.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from app.auth.ownership import owner_filter
from app.batches.execution import stored_principal
from app.batches.lines import ENDPOINTS, output_lines, parse_input, token_estimate
from app.batches.store import FINAL, BatchStore, new_id
from app.batches.tables import BatchFileRow, BatchRow
from app.core.errors import (
    BadRequestError,
    BatchQuotaExceededError,
    PayloadTooLargeError,
    ResourceConflictError,
)
from kernel.orm import utcnow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from app.auth.principal import Principal
    from app.batches.settings import BatchSettings
    from kernel.queue.base import WorkQueue

__all__ = ["PURPOSES", "WINDOW_PATTERN", "BatchService", "completion_window"]

log = structlog.get_logger(__name__)

PURPOSES = ("batch",)
"""Purposes a client may upload; ``batch_output`` files are written by batches."""
WINDOW_PATTERN = r"^(?:(?:[1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8])h|(?:[1-9]|[1-5][0-9])m)$"
"""``24h`` as OpenAI takes it; ragserve also takes 1-168 hours or 1-59 minutes."""
_WINDOW = re.compile(WINDOW_PATTERN)
MAX_METADATA = 16
MAX_METADATA_KEY, MAX_METADATA_VALUE = 64, 512
"""Bounds of a batch's metadata, which the API's schema states too."""


def completion_window(value: str) -> timedelta:
    """The window a batch must finish in: OpenAI's ``24h``, or 1-168 hours (``<n>h``)
    or 1-59 minutes (``<n>m``), a ragserve extension.

    Raises:
        BadRequestError: Another spelling or length.
    """
    if _WINDOW.match(value) is None:
        raise BadRequestError(
            "completion_window must be '24h' (or 1-168 '<n>h', 1-59 '<n>m').",
            param="completion_window",
        )
    amount, unit = int(value[:-1]), value[-1]
    return timedelta(hours=amount) if unit == "h" else timedelta(minutes=amount)


class BatchService:
    """Files and batches of every tenant, and the queue their work goes to."""

    def __init__(
        self,
        store: BatchStore,
        queue: WorkQueue[str],
        settings: BatchSettings,
        *,
        default_max_tokens: int,
    ) -> None:
        self.store = store
        self.queue = queue
        self._settings = settings
        self._default_max_tokens = default_max_tokens

    @property
    def max_file_bytes(self) -> int:
        return self._settings.max_file_bytes

    async def upload(
        self, principal: Principal, *, filename: str, purpose: str, content: bytes
    ) -> BatchFileRow:
        """Store a file; a ``batch`` file is parsed whole first.

        Raises:
            BadRequestError: An unknown purpose, or a file that is not a valid batch
                input (the message names the line).
            PayloadTooLargeError: Larger than ``max_file_bytes``.
        """
        if purpose not in PURPOSES:
            raise BadRequestError(
                f"purpose must be one of: {', '.join(PURPOSES)}.", param="purpose"
            )
        if len(content) > self._settings.max_file_bytes:
            raise PayloadTooLargeError(
                f"The file is {len(content)} bytes; the limit is {self._settings.max_file_bytes}.",
                param="file",
            )
        lines = parse_input(content, max_lines=self._settings.max_lines)
        return await self.store.put_file(
            new_id("file-"),
            principal.tenant_id,
            principal.subject,
            purpose=purpose,
            filename=filename or "input.jsonl",
            content=content,
            lines=len(lines),
            ttl=timedelta(seconds=self._settings.file_ttl_s),
        )

    async def content(self, principal: Principal, file_id: str) -> AsyncIterator[bytes]:
        """A file's bytes, as they are read: a batch's output or error file is
        written out from its results a page at a time, never whole in memory.

        Raises:
            ResourceNotFoundError: No such file for this tenant (before any byte).
        """
        row = await self.store.file(
            principal.tenant_id, file_id, owner=owner_filter(principal), content=True
        )
        if row.source_batch_id is None:
            return _once(row.content)
        pages = self.store.result_pages(row.source_batch_id, ok=bool(row.source_ok))
        return (output_lines(page) async for page in pages)

    async def create(
        self,
        principal: Principal,
        *,
        input_file_id: str,
        endpoint: str,
        window: str,
        metadata: dict[str, str] | None,
    ) -> BatchRow:
        """Store a batch of the caller's input file and queue it.

        Raises:
            BadRequestError: An unknown endpoint or window, an input file that is not
                a batch input or holds lines for another endpoint, bad metadata.
            ResourceNotFoundError: No such file for this tenant.
            BatchQuotaExceededError: The tenant's unfinished batches would hold more
                lines or tokens than its quota (429).
        """
        if endpoint not in ENDPOINTS:
            raise BadRequestError(
                f"endpoint must be one of: {', '.join(ENDPOINTS)}.", param="endpoint"
            )
        expires = completion_window(window)
        _check_metadata(metadata)
        source = await self.store.file(
            principal.tenant_id, input_file_id, owner=owner_filter(principal), content=True
        )
        if source.purpose != "batch":
            raise BadRequestError(
                f"File {input_file_id} has purpose {source.purpose!r}, not 'batch'.",
                param="input_file_id",
            )
        lines = parse_input(source.content, max_lines=self._settings.max_lines)
        other = next((line for line in lines if line.url != endpoint), None)
        if other is not None:
            raise BadRequestError(
                f"Request {other.custom_id!r} is for {other.url}; every line of a batch must "
                f"be for its endpoint {endpoint}.",
                param="input_file_id",
            )
        now = utcnow()
        row = BatchRow(
            id=new_id("batch_"),
            tenant_id=principal.tenant_id,
            owner=principal.subject,
            principal=stored_principal(principal),
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=window,
            status="validating",
            meta=metadata,
            total=len(lines),
            completed=0,
            failed=0,
            queued_tokens=sum(token_estimate(line, self._default_max_tokens) for line in lines),
            prompt_tokens=0,
            completion_tokens=0,
            created_at=now,
            expires_at=now + expires,
        )
        settings = self._settings
        if not await self.store.add_batch(
            row, max_lines=settings.max_queued_lines, max_tokens=settings.max_queued_tokens
        ):
            lines_left, tokens_left = await self.store.queued(principal.tenant_id)
            raise BatchQuotaExceededError(
                f"This batch ({row.total} requests, about {row.queued_tokens} tokens) would take "
                f"the tenant's unfinished batches past their quota ({lines_left} of "
                f"{settings.max_queued_lines} requests and {tokens_left} of "
                f"{settings.max_queued_tokens} tokens are queued); wait for them to finish.",
                retry_after=60.0,
            )
        try:
            await self.queue.put(row.id)
        except Exception:
            await self.store.move(
                row.id,
                "failed",
                only_from=("validating",),
                errors=[{"code": "queue_unavailable", "message": "The batch could not be queued."}],
            )
            raise
        log.info("batch_created", batch_id=row.id, tenant_id=row.tenant_id, requests=row.total)
        return row

    async def cancel(self, principal: Principal, batch_id: str) -> BatchRow:
        """Stop the batch: one no worker has started is ``cancelled`` at once (it has
        nothing to write); a running one is ``cancelling`` until its worker has
        written what was answered, then ``cancelled``.

        Raises:
            ResourceNotFoundError: No such batch for this tenant.
            ResourceConflictError: It has already ended.
        """
        tenant_id, owner = principal.tenant_id, owner_filter(principal)
        row = await self.store.batch(tenant_id, batch_id, owner)
        if row.status in ("cancelling", "cancelled"):
            return row
        if row.status == "validating" and await self.store.move(
            batch_id, "cancelled", only_from=("validating",), queued_tokens=0
        ):
            # Its queue entry stays; the worker that takes it finds it ended.
            log.info("batch_cancelled_before_start", batch_id=batch_id)
            return await self.store.batch(tenant_id, batch_id)
        if row.status in FINAL or not await self.store.move(
            batch_id, "cancelling", only_from=("validating", "in_progress")
        ):
            current = await self.store.batch(tenant_id, batch_id)
            if current.status in ("cancelling", "cancelled"):
                return current
            raise ResourceConflictError(
                f"Batch {batch_id} is {current.status}; it can no longer be cancelled.",
                param="batch_id",
            )
        return await self.store.batch(tenant_id, batch_id)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise BadRequestError(f"metadata holds at most {MAX_METADATA} pairs.", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise BadRequestError(
                f"metadata keys are at most {MAX_METADATA_KEY} characters and values "
                f"{MAX_METADATA_VALUE}.",
                param="metadata",
            )


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
