"""Acquire from a shared store, and from this process's own buckets while it is down."""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

import structlog

from app.core.metrics import RATE_LIMIT_BACKEND_ERRORS
from app.ratelimit.buckets.base import BucketsUnavailableError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.ratelimit.buckets.base import Bucket, Decision, TokenBuckets

log = structlog.get_logger(__name__)


@overload
async def acquire_or_fallback(
    store: TokenBuckets, fallback: TokenBuckets, buckets: Sequence[Bucket]
) -> Decision: ...


@overload
async def acquire_or_fallback(
    store: TokenBuckets, fallback: TokenBuckets | None, buckets: Sequence[Bucket]
) -> Decision | None: ...


async def acquire_or_fallback(
    store: TokenBuckets, fallback: TokenBuckets | None, buckets: Sequence[Bucket]
) -> Decision | None:
    """``store``'s decision on ``buckets``; while it does not answer, ``fallback``'s
    (``None`` without one: let through), the outage logged and counted in
    ``ragserve:rate_limit_backend_errors_total``."""
    try:
        return await store.acquire(buckets)
    except BucketsUnavailableError as exc:
        RATE_LIMIT_BACKEND_ERRORS.inc()
        log.warning("rate_limit_store_unavailable", error=str(exc))
        return None if fallback is None else await fallback.acquire(buckets)
