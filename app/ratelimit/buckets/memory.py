"""Token buckets in a dict of this process (see ``base.py`` for the bucket model)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from app.ratelimit.buckets.base import Bucket, Decision, TokenBuckets

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["InProcessTokenBuckets"]


def _refilled(level: float, since: float, now: float, bucket: Bucket) -> float:
    return min(bucket.burst, level + max(0.0, now - since) * bucket.rate)


class InProcessTokenBuckets(TokenBuckets):
    """Buckets in a dict of this process: correct for one API process only.

    There is no ``await`` between reading and writing a bucket, so an ``acquire`` is
    atomic on the event loop.
    """

    _PRUNE_AT = 50_000

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    async def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        now = time.monotonic()
        levels = []
        for b in buckets:
            state = self._state.get(b.name)
            levels.append(b.burst if state is None else _refilled(state[0], state[1], now, b))
        allowed = all(level >= b.need for b, level in zip(buckets, levels, strict=True))
        if allowed:
            for i, b in enumerate(buckets):
                if b.cost:
                    levels[i] -= b.cost
                    self._state[b.name] = (levels[i], now)
            if len(self._state) > self._PRUNE_AT:
                self._prune(now)
        return Decision(allowed, tuple(levels))

    async def close(self) -> None:
        self._state.clear()

    def _prune(self, now: float) -> None:
        """Forget buckets idle long enough to be surely full (a full bucket is no bucket).

        NOTE: the state does not remember each bucket's rate, so a bucket counts as
        full after a minute idle; at the smallest sane rate (1 per minute) that is
        still at least one unit, and a forgotten bucket starts full.
        """
        for name, (_, since) in list(self._state.items()):
            if now - since > 60:
                del self._state[name]
