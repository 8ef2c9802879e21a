"""The queue batch jobs run from: the shared work queue carrying batch ids (§7a)."""

from __future__ import annotations

from app.core.errors import OverloadedError, UnavailableError
from kernel.queue.base import JobKind

__all__ = ["BATCH_JOBS"]


def _full(max_queued: int) -> OverloadedError:
    return OverloadedError(
        f"The batch queue is full ({max_queued} batches waiting); retry later.",
        retry_after=60.0,
    )


def _unavailable(detail: str) -> UnavailableError:
    # NOTE: the detail names hosts and library errors: it goes to the log, not the client.
    del detail
    return UnavailableError("The batch queue cannot take work now; retry later.")


BATCH_JOBS: JobKind[str] = JobKind(
    encode=lambda batch_id: batch_id, decode=lambda raw: raw, full=_full, unavailable=_unavailable
)
"""A batch job is the batch's id: the worker reads the rest from SQL."""
