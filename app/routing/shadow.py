"""Shadow traffic: a sampled copy of live turns goes to a shadow version, off the
user's path; its answer is stored beside the primary's and compared, never shown.

The copy starts when the primary's generation starts, with the same prompt, so their
time to first token and latency are measured under the same load. A bounded queue
and a fixed number of workers keep shadowing from taking more than its share: when
the queue is full the copy is dropped and counted, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import select

from app.chat.citations import cite
from app.chat.prompt import Source
from app.routing.specs import VersionSpec
from app.routing.tables import ShadowAnswerRow
from inference import FinishEvent, FinishReason, GenerationRequest, TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from inference import GenerationEvent

    # ``(version, request, affinity_key=...)``: the router's ``generate``.
    GenerateFn = Callable[..., AsyncGenerator[GenerationEvent, None]]
    EmbedFn = Callable[[Sequence[str]], Awaitable[list[list[float]]]]

__all__ = ["PrimaryResult", "ShadowJob", "ShadowRunner", "ShadowStore"]

log = structlog.get_logger(__name__)

SHADOW_REQUESTS = Counter(
    "ragserve:shadow_requests_total",
    "Shadow copies of live turns, by how they ended (completed, failed, dropped).",
    ["model", "version", "outcome"],
)
SHADOW_QUEUE = Gauge("ragserve:shadow_queue_length", "Shadow copies waiting for a worker.")


@dataclass(frozen=True, slots=True)
class PrimaryResult:
    """What the answer shown to the user was, for the comparison."""

    content: str
    ttft_ms: float | None
    latency_ms: float | None


@dataclass
class ShadowJob:
    """One copy of a live turn for one shadow version."""

    tenant_id: str
    conversation_id: str
    message_id: str
    version: VersionSpec
    primary_version: str
    request: GenerationRequest
    sources: list[Source]
    affinity_key: str | None = None
    primary: asyncio.Future[PrimaryResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ShadowStore:
    """Shadow answers in SQL, and the summary of a version against the primary."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(self, row: ShadowAnswerRow) -> None:
        async with self._sessions() as session, session.begin():
            session.add(row)

    async def list(self, message_id: str) -> list[ShadowAnswerRow]:
        """The shadow answers to one primary message."""
        async with self._sessions() as session:
            query = select(ShadowAnswerRow).where(ShadowAnswerRow.message_id == message_id)
            return list((await session.scalars(query)).all())

    async def summary(
        self, model: str, version: str, since: datetime, until: datetime
    ) -> dict[str, Any]:
        """How ``version`` compared with the answers shown, over ``[since, until)``."""
        async with self._sessions() as session:
            query = (
                select(ShadowAnswerRow)
                .where(
                    ShadowAnswerRow.model == model,
                    ShadowAnswerRow.version == version,
                    ShadowAnswerRow.created_at >= since,
                    ShadowAnswerRow.created_at < until,
                )
                .order_by(ShadowAnswerRow.created_at.desc())
                .limit(10_000)
            )
            rows = list((await session.scalars(query)).all())
        ok = [r for r in rows if r.error is None]
        return {
            "model": model,
            "version": version,
            "since": since,
            "until": until,
            "answers": len(rows),
            "failed": len(rows) - len(ok),
            "primary_versions": sorted({r.primary_version for r in rows}),
            "similarity": _stats([r.similarity for r in ok]),
            "citation_overlap": _stats([r.citation_overlap for r in ok]),
            "length": _stats([float(r.length) for r in ok]),
            "primary_length": _stats([float(r.primary_length) for r in ok]),
            "ttft_ms": _stats([r.ttft_ms for r in ok]),
            "primary_ttft_ms": _stats([r.primary_ttft_ms for r in ok]),
            "latency_ms": _stats([r.latency_ms for r in ok]),
            "primary_latency_ms": _stats([r.primary_latency_ms for r in ok]),
        }


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return {"mean": None, "p50": None, "p95": None}
    return {
        "mean": round(statistics.fmean(xs), 4),
        "p50": round(xs[len(xs) // 2], 4),
        "p95": round(xs[min(len(xs) - 1, math.ceil(len(xs) * 0.95) - 1)], 4),
    }


class ShadowRunner:
    """Runs shadow jobs on a few workers from a bounded queue."""

    def __init__(
        self,
        generate: GenerateFn,
        embed: EmbedFn,
        store: ShadowStore,
        *,
        queue_size: int = 64,
        concurrency: int = 2,
        primary_timeout_s: float = 600.0,
    ) -> None:
        """Args:
        generate: ``(version, request, affinity_key=...)`` to the version's events
            (the router's ``generate``).
        embed: Texts to unit vectors, for answer similarity.
        store: Where answers go.
        queue_size: Copies that may wait; more are dropped.
        concurrency: Copies generated at once.
        primary_timeout_s: Longest wait for the primary's answer to compare with.
        """
        self._generate = generate
        self._embed = embed
        self._store = store
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(max(1, queue_size))
        self._concurrency = max(1, concurrency)
        self._primary_timeout_s = primary_timeout_s
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"shadow-{i}")
                for i in range(self._concurrency)
            ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    def submit(self, job: ShadowJob) -> bool:
        """Queue ``job``; ``False`` (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            SHADOW_REQUESTS.labels(job.version.model, job.version.version, "dropped").inc()
            return False
        SHADOW_QUEUE.set(self._queue.qsize())
        return True

    async def join(self) -> None:
        """Wait until every queued job is done (tests and shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            SHADOW_QUEUE.set(self._queue.qsize())
            try:
                await self._run(job)
            except Exception as exc:
                log.warning("shadow_failed", message_id=job.message_id, error=repr(exc))
                SHADOW_REQUESTS.labels(job.version.model, job.version.version, "failed").inc()
            finally:
                self._queue.task_done()

    async def _run(self, job: ShadowJob) -> None:
        start = time.perf_counter()
        parts: list[str] = []
        ttft_ms: float | None = None
        finish: FinishEvent | None = None
        error: str | None = None
        try:
            events = self._generate(job.version, job.request, affinity_key=job.affinity_key)
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, TokenEvent):
                        if ttft_ms is None:
                            ttft_ms = (time.perf_counter() - start) * 1000
                        parts.append(event.text)
                    else:
                        finish = event
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        latency_ms = (time.perf_counter() - start) * 1000
        if finish is not None and finish.reason == FinishReason.ERROR:
            error = finish.error or "the shadow's stream failed"
        primary = await asyncio.wait_for(asyncio.shield(job.primary), self._primary_timeout_s)
        content = "".join(parts)
        similarity: float | None = None
        if error is None and content and primary.content:
            a, b = await self._embed([primary.content, content])
            similarity = round(_cosine(a, b), 4)
        await self._store.record(
            ShadowAnswerRow(
                tenant_id=job.tenant_id,
                conversation_id=job.conversation_id,
                message_id=job.message_id,
                model=job.version.model,
                version=job.version.version,
                primary_version=job.primary_version,
                content=content,
                finish_reason=str(finish.reason if finish else FinishReason.ERROR),
                error=error,
                similarity=similarity,
                citation_overlap=await _citation_overlap(primary.content, content, job.sources),
                length=len(content),
                primary_length=len(primary.content),
                ttft_ms=None if ttft_ms is None else round(ttft_ms, 2),
                primary_ttft_ms=primary.ttft_ms,
                latency_ms=round(latency_ms, 2),
                primary_latency_ms=primary.latency_ms,
            )
        )
        outcome = "failed" if error else "completed"
        SHADOW_REQUESTS.labels(job.version.model, job.version.version, outcome).inc()


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def _citation_overlap(primary: str, shadow: str, sources: Sequence[Source]) -> float:
    """Jaccard overlap of the sources the two answers cite (1.0 when neither cites), by
    shared words alone: no embedding per shadow answer."""
    a = {c["n"] for c in (await cite(primary, sources)).citations}
    b = {c["n"] for c in (await cite(shadow, sources)).citations}
    if not a and not b:
        return 1.0
    return round(len(a & b) / len(a | b), 4)
