"""Keeps stored answers honest about the process writing them.

While this process streams answers, it refreshes their rows every heartbeat
(their text so far included), so a crash loses at most one heartbeat of text.
Every heartbeat it also sweeps: ``streaming`` rows nobody refreshed for the stale
period belonged to a dead process (this one before a restart, or another node)
and become ``interrupted`` (``conversation.streaming``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from kernel.tasks import stop_task

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from app.chat.resume.base import TokenBuffer
    from conversation import AnswerStreams

__all__ = ["AnswerKeeper"]

log = structlog.get_logger(__name__)


class AnswerKeeper:
    """Heartbeats this process's streaming answers and interrupts dead ones."""

    def __init__(
        self,
        answers: AnswerStreams,
        progress: Callable[[], Mapping[str, str]],
        buffer: TokenBuffer | None,
        *,
        heartbeat_s: float,
        stale_s: float,
    ) -> None:
        """Args:
        answers: Where answers are stored.
        progress: The text so far of each answer this process is writing.
        buffer: Where a dead process's tokens may still be (Redis), read when
            interrupting its answers.
        heartbeat_s: Seconds between heartbeats (and sweeps).
        stale_s: A streaming answer not refreshed for this long is interrupted.
        """
        self._answers = answers
        self._progress = progress
        self._buffer = buffer
        self._heartbeat_s = heartbeat_s
        self._stale_s = stale_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep once now, then heartbeat and sweep in the background."""
        await self.tick()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def tick(self) -> None:
        """One heartbeat and one sweep; failures are logged (the database may be away)."""
        progress = dict(self._progress())
        try:
            await self._answers.heartbeat(progress)
            marked = await self._answers.interrupt_stale(
                self._stale_s, self._recover, keep=list(progress)
            )
        except Exception as exc:
            log.warning("answer_keeper_failed", error=repr(exc))
            return
        if marked:
            log.info("answers_interrupted", count=len(marked), message_ids=marked)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            await self.tick()

    async def _recover(self, message_id: str) -> str | None:
        if self._buffer is None:
            return None
        return await asyncio.wait_for(self._buffer.text(message_id), timeout=self._heartbeat_s)
