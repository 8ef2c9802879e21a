"""Background-task helpers shared by every package."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it to end.

    NOTE: a task created on another event loop (a test's, a closed one) cannot be
    awaited from this one; it is only cancelled.
    """
    if task is None or task.done():
        return
    task.cancel()
    if task.get_loop() is asyncio.get_running_loop():
        with contextlib.suppress(asyncio.CancelledError):
            await task
