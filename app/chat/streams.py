"""Async streams a turn composes: closed however the block using them ends."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_T = TypeVar("_T")


async def replay(pieces: tuple[str, ...]) -> AsyncIterator[str]:
    """Yield ``pieces`` as a stream (a cached answer replayed like a generated one)."""
    for piece in pieces:
        yield piece


@asynccontextmanager
async def closing(stream: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async generator however the block ends (``aclose`` aborts the engine)."""
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
