"""Sign-in attempts, rate-limited per account and per client address.

Token buckets (``app/ratelimit/buckets``; in the shared Redis when configured, so
every API node counts the same attempts): each attempt takes one unit from its
address's bucket; each failure takes one from its account's, and an account whose
bucket is empty is refused before its password is even checked, so guessing one
account's password is slowed to ``1 / refill_s`` tries a second from anywhere.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import structlog

from app.core.errors import RateLimitedError
from app.ratelimit.buckets import Bucket, InProcessTokenBuckets
from app.ratelimit.buckets.fallback import acquire_or_fallback

if TYPE_CHECKING:
    from app.console.settings import ConsoleSettings
    from app.ratelimit.buckets import Decision, TokenBuckets

__all__ = ["LoginThrottle"]

log = structlog.get_logger(__name__)


class LoginThrottle:
    """Admits or refuses a sign-in attempt; charges failures to the account."""

    def __init__(self, buckets: TokenBuckets, settings: ConsoleSettings) -> None:
        """Args:
        buckets: Where the buckets live; this process's own take over while a shared
            store does not answer.
        settings: The per-account and per-address bursts and the refill time.
        """
        self._buckets = buckets
        self._fallback = InProcessTokenBuckets()
        self._per_account = settings.login_attempts_per_account
        self._per_ip = settings.login_attempts_per_ip
        self._refill_s = settings.login_refill_s

    def _account(self, account: str, need: float, cost: float) -> Bucket:
        return Bucket(f"acct:{account}", self._per_account, 1 / self._refill_s, need, cost)

    async def admit(self, account: str, address: str | None) -> None:
        """Take one attempt from the address; refuse while either budget is spent.

        Raises:
            RateLimitedError: Too many attempts lately (with ``Retry-After``).
        """
        buckets = [self._account(account, need=1, cost=0)]
        if address:
            buckets.append(Bucket(f"ip:{address}", self._per_ip, 1 / self._refill_s))
        decision = await self._acquire(buckets)
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after(buckets)))
            log.warning("console_login_throttled", account=account, address=address)
            raise RateLimitedError("Too many sign-in attempts; try again later.", retry_after=retry)

    async def failed(self, account: str) -> None:
        """Charge a failed attempt to the account."""
        await self._acquire([self._account(account, need=0, cost=1)])

    async def _acquire(self, buckets: list[Bucket]) -> Decision:
        return await acquire_or_fallback(self._buckets, self._fallback, buckets)
