"""The ingestion queue: the shared work queue (``kernel.queue``) carrying ``IngestJob``s.

Entries hold the job's ids and content hash, never the document's bytes. Which
implementation serves is configuration: in this process (the embedded default,
re-filled from the stored uploads on start) or on a Redis stream that every
worker node reads (docs/ingestion.md).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kernel.queue.base import (
    DEFAULT_CLAIM_IDLE_S,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_QUEUED,
    Delivery,
    JobKind,
    WorkQueue,
)
from kernel.queue.memory import InProcessQueue
from kernel.queue.redis import RedisStreamsQueue
from retrieval.errors import IngestQueueFullError, IngestQueueUnavailableError
from retrieval.types import IngestJob

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "INGEST_JOBS",
    "Delivery",
    "InProcessIngestQueue",
    "IngestQueue",
    "RedisStreamsIngestQueue",
]

IngestQueue = WorkQueue[IngestJob]
"""A queue of ingestion jobs, whichever implementation serves it."""


def _encode(job: IngestJob) -> str:
    return json.dumps(
        {"tenant_id": job.tenant_id, "document_id": job.document_id, "hash": job.content_hash}
    )


def _decode(raw: str) -> IngestJob:
    data = json.loads(raw)
    return IngestJob(data["tenant_id"], data["document_id"], data["hash"])


def _full(max_queued: int) -> IngestQueueFullError:
    return IngestQueueFullError(
        f"the ingestion queue is full ({max_queued} documents waiting); retry later"
    )


def _unavailable(detail: str) -> IngestQueueUnavailableError:
    return IngestQueueUnavailableError(f"the ingestion queue is unreachable: {detail}")


INGEST_JOBS = JobKind(encode=_encode, decode=_decode, full=_full, unavailable=_unavailable)


class InProcessIngestQueue(InProcessQueue[IngestJob]):
    """The ingestion queue in this process's memory (the embedded default)."""

    def __init__(
        self,
        *,
        claim_idle_s: float = DEFAULT_CLAIM_IDLE_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        super().__init__(
            INGEST_JOBS,
            claim_idle_s=claim_idle_s,
            max_deliveries=max_deliveries,
            max_queued=max_queued,
        )


class RedisStreamsIngestQueue(RedisStreamsQueue[IngestJob]):
    """The ingestion queue on a Redis stream read by the ``ingest`` consumer group."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str = "ingest",
        *,
        claim_idle_s: float = DEFAULT_CLAIM_IDLE_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        super().__init__(
            redis,
            INGEST_JOBS,
            stream,
            group,
            claim_idle_s=claim_idle_s,
            max_deliveries=max_deliveries,
            max_queued=max_queued,
        )
