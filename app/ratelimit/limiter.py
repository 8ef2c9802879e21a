"""Who may do how much: per-key and per-tenant buckets, token budgets, turns at once.

Every request takes one unit from its key's and its tenant's request buckets, and
passes only while the key's and the tenant's token budgets are not in debt. Tokens a
turn generated are charged to both budgets after the turn (``on_usage``). Chat turns
running at once are counted per key on this node (``turn_slot``).

Before authentication, every request also takes one unit from its client address's
bucket and is refused while the address's failed-authentication budget is used up
(``admit_address``, ``on_auth_failure``): a flood of bad credentials is throttled
without a database lookup each.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import RateLimitedError, TooManyTurnsError
from app.core.metrics import RATE_LIMIT_REJECTIONS
from app.ratelimit.buckets import Bucket, Decision, TokenBuckets
from app.ratelimit.buckets.fallback import acquire_or_fallback

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from app.auth.principal import Principal
    from app.ratelimit.settings import RateLimitSettings

__all__ = ["Quota", "RateLimiter"]


# Order of the buckets of a request check; the scopes name them in metrics.
_SCOPES = ("key", "tenant", "key_tokens", "tenant_tokens")


@dataclass(frozen=True, slots=True)
class Quota:
    """The request bucket closest to empty after a check, as response headers report it.

    The headers follow the IETF draft ``RateLimit`` header fields (draft-ietf-httpapi-
    ratelimit-headers-07): ``RateLimit-Limit`` the burst, ``RateLimit-Remaining`` the
    whole units left, ``RateLimit-Reset`` the seconds until the bucket is full again,
    ``RateLimit-Policy`` the burst and the seconds a full refill takes.
    """

    limit: int
    remaining: int
    reset_s: int
    window_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={self.window_s}",
        }


class RateLimiter:
    """The rate-limit policy over a ``TokenBuckets`` store.

    NOTE: when the shared store (Redis) does not answer, this process's own
    ``fallback`` buckets decide (each process then enforces the limits alone, so N
    processes let up to N times the rate through), and without a fallback requests are
    let through; either way it is counted in
    ``ragserve:rate_limit_backend_errors_total``. A rate limiter that turns a Redis
    outage into a full API outage protects nothing.
    """

    def __init__(
        self,
        buckets: TokenBuckets,
        settings: RateLimitSettings,
        fallback: TokenBuckets | None = None,
    ) -> None:
        self._buckets = buckets
        self._fallback = fallback
        self._settings = settings
        self._turns: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    async def admit(self, principal: Principal) -> Quota | None:
        """Take one request from the caller's buckets.

        Returns:
            The quota left, for response headers; ``None`` when limits are off or the
            bucket store did not answer.

        Raises:
            RateLimitedError: A bucket is empty (``retry_after`` says for how long).
        """
        if not self._settings.enabled:
            return None
        buckets = self._request_buckets(principal)
        decision = await self._acquire(buckets)
        if decision is None:
            return None
        quota = _quota(buckets[:2], decision.levels[:2])
        if decision.allowed:
            return quota
        blocking = decision.blocking(buckets)
        scope = _SCOPES[blocking[0]]
        RATE_LIMIT_REJECTIONS.labels(scope).inc()
        retry_after = decision.retry_after(buckets)
        raise RateLimitedError(
            _MESSAGES[scope].format(seconds=max(1, math.ceil(retry_after))),
            retry_after=retry_after,
            headers=quota.headers(),
        )

    async def admit_address(self, address: str | None) -> None:
        """Take one request from a client address's bucket, before authentication.

        Raises:
            RateLimitedError: The address's request bucket is empty, or it failed
                to authenticate too often lately.
        """
        if not self._settings.enabled or not address:
            return
        buckets = self._address_buckets(address)
        decision = await self._acquire(buckets)
        if decision is None or decision.allowed:
            return
        scope = ("ip", "ip_auth_failures")[decision.blocking(buckets)[0]]
        RATE_LIMIT_REJECTIONS.labels(scope).inc()
        retry_after = decision.retry_after(buckets)
        raise RateLimitedError(
            _MESSAGES[scope].format(seconds=max(1, math.ceil(retry_after))),
            retry_after=retry_after,
        )

    async def on_auth_failure(self, address: str | None) -> None:
        """Charge one failed authentication to a client address's budget."""
        if not self._settings.enabled or not address:
            return
        failures = self._address_buckets(address)[1]
        await self._acquire([Bucket(failures.name, failures.burst, failures.rate, need=0)])

    async def check(self, principal: Principal) -> None:
        """``admit`` for a transport without response headers (a WebSocket chat turn).

        Raises:
            RateLimitedError: A bucket is empty.
        """
        await self.admit(principal)

    async def on_usage(self, tenant_id: str, subject: str | None, completion_tokens: int) -> None:
        """Charge a finished turn's generated tokens to the key's and the tenant's budget.

        The charge always passes and may leave a budget in debt: the caller's next
        requests are refused until the refill has paid it back.
        """
        if not self._settings.enabled or completion_tokens <= 0:
            return
        s = self._settings
        charges = [
            Bucket(_name(tenant_id, "tok", "tenant", tenant_id), s.tokens_burst, s.tokens_rate)
        ]
        if subject is not None:
            charges.append(
                Bucket(_name(tenant_id, "tok", "key", subject), s.tokens_burst, s.tokens_rate)
            )
        charges = [Bucket(b.name, b.burst, b.rate, need=0, cost=completion_tokens) for b in charges]
        await self._acquire(charges)

    @asynccontextmanager
    async def turn_slot(self, principal: Principal) -> AsyncIterator[None]:
        """Hold one of the key's concurrent chat turns on this node while the block runs.

        Raises:
            TooManyTurnsError: The key already runs ``max_turns_per_key`` turns.
        """
        limit = self._settings.max_turns_per_key
        subject = principal.subject
        running = self._turns.get(subject, 0)
        if self._settings.enabled and running >= limit:
            RATE_LIMIT_REJECTIONS.labels("turns").inc()
            raise TooManyTurnsError(
                f"At most {limit} chat turns may run at once for one API key; "
                "wait for one to finish.",
                retry_after=1,
            )
        self._turns[subject] = running + 1
        try:
            yield
        finally:
            left = self._turns[subject] - 1
            if left:
                self._turns[subject] = left
            else:
                del self._turns[subject]

    def running_turns(self, subject: str) -> int:
        """Chat turns the key runs now on this node."""
        return self._turns.get(subject, 0)

    async def close(self) -> None:
        await self._buckets.close()

    def _request_buckets(self, principal: Principal) -> list[Bucket]:
        s = self._settings
        tenant = principal.tenant_id
        override = principal.rate_limit
        key_burst = override.burst if override else s.key_burst
        key_rate = override.rate_per_s if override else s.key_rate
        return [
            Bucket(_name(tenant, "req", "key", principal.subject), key_burst, key_rate),
            Bucket(_name(tenant, "req", "tenant", tenant), s.tenant_burst, s.tenant_rate),
            # The token budgets are looked at, not charged: a request passes while
            # at least one token is left, and the turn pays its tokens afterwards.
            Bucket(
                _name(tenant, "tok", "key", principal.subject),
                s.tokens_burst,
                s.tokens_rate,
                cost=0,
            ),
            Bucket(_name(tenant, "tok", "tenant", tenant), s.tokens_burst, s.tokens_rate, cost=0),
        ]

    def _address_buckets(self, address: str) -> list[Bucket]:
        s = self._settings
        return [
            Bucket(_name(address, "req", "ip", address), s.ip_burst, s.ip_rate),
            # Looked at, not charged: only a failed authentication takes from it.
            Bucket(
                _name(address, "auth", "ip", address),
                s.ip_auth_failures_burst,
                s.ip_auth_failures_rate,
                cost=0,
            ),
        ]

    async def _acquire(self, buckets: list[Bucket]) -> Decision | None:
        return await acquire_or_fallback(self._buckets, self._fallback, buckets)


_MESSAGES = {
    "key": "Rate limit of this API key exceeded; retry in {seconds} s.",
    "tenant": "Rate limit of this tenant exceeded; retry in {seconds} s.",
    "key_tokens": "Generated-token budget of this API key used up; retry in {seconds} s.",
    "tenant_tokens": "Generated-token budget of this tenant used up; retry in {seconds} s.",
    "ip": "Too many requests from this address; retry in {seconds} s.",
    "ip_auth_failures": (
        "Too many failed authentications from this address; retry in {seconds} s."
    ),
}


def _name(tenant_id: str, kind: str, scope: str, who: str) -> str:
    # The tenant (the address, for address buckets) as a Redis Cluster hash tag:
    # every bucket of one check in one slot.
    return f"{{{tenant_id}}}:{kind}:{scope}:{who}"


def _quota(buckets: list[Bucket], levels: tuple[float, ...]) -> Quota:
    """The quota of whichever request bucket has the fewest whole units left."""
    level, bucket = min(zip(levels, buckets, strict=True), key=lambda pair: pair[0])
    return Quota(
        limit=int(bucket.burst),
        remaining=max(0, math.floor(level)),
        reset_s=max(0, math.ceil((bucket.burst - level) / bucket.rate)),
        window_s=max(1, math.ceil(bucket.burst / bucket.rate)),
    )
