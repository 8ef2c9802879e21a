"""A shared token buffer (Redis) that falls back to this process's memory.

A turn whose ``open`` fails on the shared buffer (Redis down or hung, its breaker
open) is buffered in this process instead: a client that reconnects to the same
process still resumes it, one that lands on another process gets ``not_found``
(the same as an expired turn). Calls about a turn go to the buffer that holds it.
A turn that was opened on Redis stays there; if Redis fails mid-turn, the runner
stops buffering it (``TurnRunner``), and its replay ends with an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from app.chat.resume.base import TokenBuffer

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from app.chat.events import EventKind
    from app.chat.resume.base import BufferedEvent
    from app.chat.resume.memory import MemoryTokenBuffer

log = structlog.get_logger(__name__)


class FallbackTokenBuffer(TokenBuffer):
    """``shared`` first; ``local`` for the turns ``shared`` could not open."""

    def __init__(self, shared: TokenBuffer, local: MemoryTokenBuffer) -> None:
        self._shared = shared
        self._local = local

    def _holder(self, message_id: str) -> TokenBuffer:
        return self._local if self._local.holds(message_id) else self._shared

    async def open(self, message_id: str, tenant_id: str) -> None:
        try:
            await self._shared.open(message_id, tenant_id)
        except Exception as exc:
            log.warning("token_buffer_local_fallback", message_id=message_id, error=repr(exc))
            await self._local.open(message_id, tenant_id)

    async def append(self, message_id: str, index: int, text: str) -> bool:
        return await self._holder(message_id).append(message_id, index, text)

    async def finish(self, message_id: str, kind: EventKind, payload: dict[str, Any]) -> None:
        await self._holder(message_id).finish(message_id, kind, payload)

    async def subscribe(
        self, message_id: str, tenant_id: str, after_index: int
    ) -> AsyncGenerator[BufferedEvent, None]:
        return await self._holder(message_id).subscribe(message_id, tenant_id, after_index)

    async def request_cancel(self, message_id: str, tenant_id: str) -> bool:
        if self._local.holds(message_id):
            return await self._local.request_cancel(message_id, tenant_id)
        return await self._shared.request_cancel(message_id, tenant_id)

    async def followed(self, message_id: str) -> bool:
        return await self._holder(message_id).followed(message_id)

    async def text(self, message_id: str) -> str | None:
        if self._local.holds(message_id):
            return await self._local.text(message_id)
        return await self._shared.text(message_id)

    async def close(self) -> None:
        await self._local.close()
        await self._shared.close()
