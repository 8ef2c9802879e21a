"""Working on a delivery while keeping its lease: renewed until the work ends.

A worker that stops renewing loses its entry to the next consumer after the
queue's claim idle time; one that finds its lease gone (it was too slow, or the
network dropped it for that long) must stop, since another worker now has it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from typing import Any

    from kernel.queue.base import Delivery, WorkQueue

T = TypeVar("T")

__all__ = ["LeaseLostError", "with_lease"]


class LeaseLostError(Exception):
    """Another consumer holds the entry now; the work was cancelled."""


async def with_lease(
    queue: WorkQueue[Any],
    consumer: str,
    delivery: Delivery[Any],
    work: Coroutine[Any, Any, T],
    *,
    renew_s: float,
    before_renew: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Run ``work``, renewing the delivery's lease every ``renew_s`` seconds.

    Args:
        before_renew: Called before each renewal (a SQL lease that must never be
            older than the queue entry's); its failure is ignored.

    Raises:
        LeaseLostError: A renewal found the entry gone or held by another consumer;
            ``work`` was cancelled.
    """
    lost = asyncio.Event()
    task = asyncio.create_task(work)

    async def keep() -> None:
        while True:
            await asyncio.sleep(renew_s)
            if before_renew is not None:
                with contextlib.suppress(Exception):
                    await before_renew()
            if not await queue.renew(consumer, delivery):
                lost.set()
                task.cancel()
                return

    keeper = asyncio.create_task(keep())
    try:
        return await task
    except asyncio.CancelledError:
        if not lost.is_set():
            task.cancel()
            raise
        raise LeaseLostError(delivery.entry_id) from None
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
