"""Slots shared round-robin between tenants: the fair share of batch lines.

A process runs at most ``slots`` batch lines at once, whatever the number of
batches. When they are all taken, the next slot to free goes to the tenant after
the last served, in turn, so a tenant with ten batches running gets no more lines
through than a tenant with one, as long as both have lines waiting.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["FairSlots"]


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
