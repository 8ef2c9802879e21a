"""The fair share between tenants' batches: of a process's workers and of its lines.

A process runs at most ``slots`` batch lines at once, whatever the number of
batches (``FairSlots``). When they are all taken, the next slot to free goes to the
tenant after the last served, in turn, so a tenant with ten batches running gets
no more lines through than a tenant with one, as long as both have lines waiting.

That share needs the other tenant's batch to run at all: a process holds at most
``workers`` batches, and one tenant's long batches could hold every worker while
another tenant's waits in the queue for hours. ``BatchShares`` says when a batch
gives way: a worker does not take a second batch of a tenant into its last free
place while another tenant's batch waits, and when every worker is taken and
another tenant waits, a batch of the tenant holding the most here gives way after
running ``quantum_s`` (it stops starting lines, lets the running ones finish and
goes to the back of the queue; it resumes later after the lines answered). With a
single worker that is time-slicing between tenants.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = ["BatchShares", "FairSlots", "Hold"]


class FairSlots:
    """``slots`` permits, handed to waiting tenants in turn."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self._free = slots
        # Tenants in turn order, each with its waiters in arrival order.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self.held: dict[str, int] = {}
        """Slots each tenant holds now (for metrics and tests)."""

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        """Hold one slot for ``tenant`` while the block runs."""
        await self._acquire(tenant)
        self.held[tenant] = self.held.get(tenant, 0) + 1
        try:
            yield
        finally:
            self.held[tenant] -= 1
            if not self.held[tenant]:
                del self.held[tenant]
            self._release()

    async def _acquire(self, tenant: str) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot as it was cancelled: pass it on
            else:
                queue = self._waiting.get(tenant)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._waiting[tenant]
            raise

    def _release(self) -> None:
        while self._waiting:
            tenant, queue = next(iter(self._waiting.items()))
            waiter = queue.popleft()
            # The tenant served goes to the back of the turn.
            del self._waiting[tenant]
            if queue:
                self._waiting[tenant] = queue
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


@dataclass
class Hold:
    """One batch a worker runs: whose, since when, and whether it is giving way."""

    tenant: str
    started: float
    giving_way: bool = False


class BatchShares:
    """The batches this process's workers hold, per tenant, and when one gives way."""

    def __init__(
        self, workers: int, quantum_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._workers = workers
        self._quantum_s = quantum_s
        self._clock = clock
        self.held: Counter[str] = Counter()
        """Batches each tenant has running here now."""
        self._giving_way = 0

    def take(self, tenant: str) -> Hold:
        """A worker runs one of ``tenant``'s batches until it ``drop``s the hold."""
        self.held[tenant] += 1
        return Hold(tenant, self._clock())

    def drop(self, hold: Hold) -> None:
        """The worker stopped running the batch (done, stopped or given way)."""
        self.held[hold.tenant] -= 1
        if self.held[hold.tenant] <= 0:
            del self.held[hold.tenant]
        if hold.giving_way:
            self._giving_way -= 1

    def defers(self, tenant: str) -> bool:
        """Whether a worker should leave ``tenant``'s batch in the queue, if another
        tenant's batch waits: it would take the last free worker for a tenant that
        already has one running here."""
        return self.held[tenant] >= 1 and self.held.total() + 1 >= self._workers

    def may_give_way(self, hold: Hold) -> bool:
        """Whether the batch should give way, if another tenant's batch waits (the
        caller asks the store only then): every worker is taken, it ran its quantum,
        its tenant holds the most batches here, and no other batch is giving way."""
        return (
            not self._giving_way
            and self.held.total() >= self._workers
            and self._clock() - hold.started >= self._quantum_s
            and self.held[hold.tenant] == max(self.held.values())
        )

    def give_way(self, hold: Hold) -> None:
        """The batch gives way: no other does until its hold is dropped."""
        if not hold.giving_way:
            hold.giving_way = True
            self._giving_way += 1
