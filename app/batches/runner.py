"""The batch workers: take a batch from the queue, answer its lines, write its files.

At least once, never twice: a batch's queue entry stays leased while a worker
runs it (renewed every third of the claim idle time); a worker that dies leaves
it to the next one after the idle time, which skips every line that already has
a result row (rows are unique per ``custom_id``). The last step writes the output
and error files under ids derived from the batch's, so finishing twice writes the
same two files.

Lines of every batch this process runs share ``concurrency`` slots, handed
round-robin between tenants (``FairSlots``), and run in the engine's batch class.
A worker shows it runs a batch by its heartbeat in SQL; a batch of another tenant
without one waits, and then a busy tenant's batch gives way (``BatchShares``):
left in the queue instead of taken, or, after ``quantum_s``, stopped as for a
cancel and put back at the end of the queue to resume later.
A cancel or the end of the completion window is noticed within a second: no new
line starts, the running ones finish, the files are written with what was
answered (an expired batch's unanswered lines go to its error file as
``batch_expired``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from app.batches.execution import principal_of
from app.batches.fair import BatchShares, FairSlots
from app.batches.lines import parse_input
from app.batches.store import FINAL, LineResult, new_id
from app.core.errors import ApiError
from app.core.metrics import BATCH_LINES_RUNNING, BATCH_REQUESTS, BATCHES_FINISHED
from kernel.orm import utcnow
from kernel.queue.lease import LeaseLostError, with_lease
from kernel.tasks import stop_task

if TYPE_CHECKING:
    from app.batches.execution import LineExecutor
    from app.batches.fair import Hold
    from app.batches.lines import InputLine
    from app.batches.settings import BatchSettings
    from app.batches.store import BatchStore
    from app.batches.tables import BatchRow
    from kernel.queue.base import Delivery, WorkQueue

__all__ = ["BatchRunner"]

log = structlog.get_logger(__name__)

_POLL_S = 1.0
_WATCH_S = 1.0
_BACKOFF_S = 2.0
_DEFER_S = 1.0
"""Pause of a worker that left a batch in the queue for another tenant's."""
_GAVE_WAY = "gave_way"
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


class BatchRunner:
    """This process's batch workers and the sweeper of expired batches and files."""

    def __init__(
        self,
        store: BatchStore,
        queue: WorkQueue[str],
        executor: LineExecutor,
        settings: BatchSettings,
    ) -> None:
        self._store = store
        self._queue = queue
        self._executor = executor
        self._settings = settings
        self._slots = FairSlots(settings.concurrency)
        self._shares = BatchShares(max(1, settings.workers), settings.quantum_s)
        self._tasks: list[asyncio.Task[None]] = []
        self._name = f"{socket.gethostname()}-{os.getpid()}-{new_id('')[:6]}"

    async def start(self) -> None:
        """Re-queue what an in-process queue lost, start the workers and the sweeper."""
        await self._queue.ensure_ready()
        if not self._queue.durable:
            present = await self._queue.jobs()
            for batch_id in await self._store.unfinished():
                if batch_id not in present:
                    await self._queue.put(batch_id)
        for n in range(self._settings.workers):
            self._tasks.append(asyncio.create_task(self._work(f"{self._name}-{n}")))
        self._tasks.append(asyncio.create_task(self._sweep()))

    async def stop(self) -> None:
        """Stop every worker; a batch being run stays queued for the next worker."""
        for task in self._tasks:
            await stop_task(task)
        self._tasks.clear()

    async def _work(self, consumer: str) -> None:
        while True:
            try:
                delivery = await self._queue.receive(consumer, _POLL_S)
                if delivery is not None:
                    await self._process(consumer, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch_worker_failed_retrying", consumer=consumer)
                await asyncio.sleep(_BACKOFF_S)

    async def _process(self, consumer: str, delivery: Delivery[str]) -> None:
        batch_id = delivery.job
        if delivery.dead:
            batch = await self._load(batch_id)
            if batch is not None and batch.status not in FINAL:
                await self._finish(batch, "failed", errors=[_error("too_many_attempts")])
            return
        batch = await self._load(batch_id)
        if (
            batch is not None
            and batch.status in ("validating", "in_progress")  # a cancel finishes at once
            and self._shares.defers(batch.tenant_id)
            and await self._others_wait(batch.tenant_id)
        ):
            # Put back before the ack: a crash between leaves two entries, not none.
            await self._queue.put(batch_id)
            await self._queue.ack(delivery)
            log.info("batch_deferred", batch_id=batch_id, tenant_id=batch.tenant_id)
            await asyncio.sleep(_DEFER_S)
            return
        try:
            done = await with_lease(
                self._queue,
                consumer,
                delivery,
                self.run(batch_id),
                renew_s=self._settings.claim_idle_s / 3,
            )
        except LeaseLostError:
            log.warning("batch_lease_lost", batch_id=batch_id)
            return
        if not done:
            await self._queue.put(batch_id)
        await self._queue.ack(delivery)

    async def _others_wait(self, tenant_id: str) -> bool:
        """Whether another tenant's unfinished batch has no worker running it."""
        stale = utcnow() - timedelta(seconds=self._settings.claim_idle_s)
        return await self._store.waiting_besides(tenant_id, stale_before=stale)

    async def run(self, batch_id: str) -> bool:
        """Run one batch to its end (or to where a cancel or its window stops it).

        Returns:
            ``False`` when it gave way to another tenant's batch before its end: it
            must be queued again.
        """
        batch = await self._load(batch_id)
        if batch is None or batch.status in FINAL:
            return True
        stop = _stopped(batch)
        if stop is not None or batch.status == "finalizing":
            await self._finish(batch, stop or "completed")
            return True
        hold = self._shares.take(batch.tenant_id)
        try:
            await self._store.beat(batch_id)
            if batch.status == "validating" and not await self._store.move(
                batch_id, "in_progress", only_from=("validating",)
            ):
                current = await self._load(batch_id)
                if current is None or current.status in FINAL:
                    return True  # cancelled before it started
            try:
                lines = await self._lines(batch)
            except ApiError as exc:
                errors = [_error("invalid_input_file", exc.message)]
                await self._finish(batch, "failed", errors=errors)
                return True
            answered = await self._store.answered(batch_id)
            pending = [line for line in lines if line.custom_id not in answered]
            log.info("batch_running", batch_id=batch_id, pending=len(pending), total=len(lines))
            outcome = await self._answer(batch, pending, hold)
            if outcome == _GAVE_WAY:
                if len(await self._store.answered(batch_id)) < len(lines):
                    await self._store.beat(batch_id, running=False)
                    log.info("batch_gave_way", batch_id=batch_id, tenant_id=batch.tenant_id)
                    return False
                outcome = "completed"  # its last lines were running already
            await self._finish(await self._load(batch_id) or batch, outcome, lines=lines)
            return True
        finally:
            self._shares.drop(hold)

    async def _answer(self, batch: BatchRow, pending: list[InputLine], hold: Hold) -> str:
        """Answer ``pending`` lines until done, cancelled, expired or it gives way;
        which one it was."""
        principal = principal_of(batch.tenant_id, batch.principal)
        stop: list[str] = []  # why it stopped, once it did
        stopped = asyncio.Event()
        window = asyncio.Semaphore(self._settings.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def one(line: InputLine) -> None:
            try:
                async with self._slots.slot(batch.tenant_id):
                    if stop:
                        return
                    BATCH_LINES_RUNNING.inc()
                    try:
                        ran = await self._executor.run(principal, line, stopped)
                    finally:
                        BATCH_LINES_RUNNING.dec()
                    if ran is None:
                        return
                    result, prompt, completion = ran
                    if await self._store.record(batch.id, result, (prompt, completion)):
                        outcome = "completed" if result.ok else "failed"
                        BATCH_REQUESTS.labels(batch.endpoint, outcome).inc()
            finally:
                window.release()

        watcher = asyncio.create_task(self._watch(batch, hold, stop, stopped))
        try:
            for line in pending:
                await window.acquire()
                if stop:
                    window.release()
                    break
                task = asyncio.create_task(one(line))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            await stop_task(watcher)
        return stop[0] if stop else "completed"

    async def _watch(
        self, batch: BatchRow, hold: Hold, stop: list[str], stopped: asyncio.Event
    ) -> None:
        """Notice a cancel or the end of the window within a second, keep the batch's
        heartbeat, and give way to another tenant's batch when ``BatchShares`` says so."""
        beat_s = self._settings.claim_idle_s / 3
        last_beat = asyncio.get_running_loop().time()
        while not stop:
            await asyncio.sleep(_WATCH_S)
            current = await self._load(batch.id)
            reason = "cancelled" if current is None else _stopped(current)
            if (
                reason is None
                and self._shares.may_give_way(hold)
                and await self._others_wait(batch.tenant_id)
                and self._shares.may_give_way(hold)  # still, after the query
            ):
                self._shares.give_way(hold)
                reason = _GAVE_WAY
            if reason is not None:
                stop.append(reason)
                stopped.set()
            elif asyncio.get_running_loop().time() - last_beat >= beat_s:
                await self._store.beat(batch.id)
                last_beat = asyncio.get_running_loop().time()

    async def _finish(
        self,
        batch: BatchRow,
        outcome: str,
        *,
        lines: list[InputLine] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write the output and error files and move the batch to ``outcome``."""
        if outcome == "completed":
            await self._store.move(batch.id, "finalizing", only_from=("in_progress",))
        if outcome == "expired":
            await self._expire_unanswered(batch, lines)
        ttl = timedelta(seconds=self._settings.file_ttl_s)
        output = await self._store.result_file(batch, "output", ttl)
        error_file = await self._store.result_file(batch, "error", ttl)
        moved = await self._store.move(
            batch.id,
            outcome,
            only_from=_FROM[outcome],
            output_file_id=output,
            error_file_id=error_file,
            queued_tokens=0,
            **({"errors": errors} if errors else {}),
        )
        if moved:
            BATCHES_FINISHED.labels(outcome).inc()
            log.info("batch_finished", batch_id=batch.id, status=outcome)

    async def _expire_unanswered(self, batch: BatchRow, lines: list[InputLine] | None) -> None:
        if lines is None:
            try:
                lines = await self._lines(batch)
            except ApiError:
                return
        answered = await self._store.answered(batch.id)
        for line in lines:
            if line.custom_id not in answered:
                result = LineResult(
                    line.line, line.custom_id, new_id("batch_req_"), 0, None, EXPIRED
                )
                if await self._store.record(batch.id, result):
                    BATCH_REQUESTS.labels(batch.endpoint, "expired").inc()

    async def _lines(self, batch: BatchRow) -> list[InputLine]:
        """The batch's requests, from its input file (an ``ApiError`` when it is gone)."""
        source = await self._store.file(batch.tenant_id, batch.input_file_id, content=True)
        return parse_input(source.content, max_lines=self._settings.max_lines)

    async def _load(self, batch_id: str) -> BatchRow | None:
        try:
            return await self._store.batch(None, batch_id)
        except ApiError:
            return None

    async def _sweep(self) -> None:
        """Expire batches no worker took in their window; delete files past their TTL."""
        while True:
            await asyncio.sleep(self._settings.cleanup_interval_s)
            try:
                now = utcnow()
                for batch_id in await self._store.overdue(now):
                    batch = await self._load(batch_id)
                    if batch is not None and batch.status == "validating":
                        await self._finish(batch, "expired")
                deleted = await self._store.delete_expired_files(now)
                if deleted:
                    log.info("batch_files_expired", count=deleted)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch_sweep_failed")


_FROM: dict[str, tuple[str, ...]] = {
    "completed": ("finalizing",),
    "cancelled": ("cancelling", "validating", "in_progress", "finalizing"),
    "expired": ("validating", "in_progress", "finalizing", "cancelling"),
    "failed": ("validating", "in_progress", "finalizing", "cancelling"),
}
"""The statuses each ending may leave (a cancel that comes late loses to completion)."""


def _stopped(batch: BatchRow) -> str | None:
    if batch.status in ("cancelling", "cancelled"):
        return "cancelled"
    if batch.status not in FINAL and batch.expires_at <= utcnow():
        return "expired"
    return None


def _error(code: str, message: str | None = None) -> dict[str, Any]:
    messages = {
        "too_many_attempts": "The batch's worker died too many times; it was given up on.",
    }
    return {
        "code": code,
        "message": message or messages.get(code, code),
        "param": None,
        "line": None,
    }
