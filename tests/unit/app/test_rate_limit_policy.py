"""The rate-limit policy: which buckets a request, a turn's tokens and a turn slot use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY

from app.auth.principal import Principal, RateLimitOverride
from app.console.login_throttle import LoginThrottle
from app.console.settings import ConsoleSettings
from app.core.errors import RateLimitedError, TooManyTurnsError
from app.ratelimit import (
    Bucket,
    BucketsUnavailableError,
    Decision,
    InProcessTokenBuckets,
    RateLimiter,
    TokenBuckets,
)
from app.ratelimit.settings import RateLimitSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

ALICE = Principal(tenant_id="acme", subject="key:alice")
BOB = Principal(tenant_id="acme", subject="key:bob")
EVE = Principal(tenant_id="globex", subject="key:eve")


def limiter(**settings: float) -> RateLimiter:
    return RateLimiter(InProcessTokenBuckets(), RateLimitSettings(**settings))  # type: ignore[arg-type]


async def admitted(rl: RateLimiter, principal: Principal, n: int) -> int:
    count = 0
    for _ in range(n):
        try:
            await rl.admit(principal)
            count += 1
        except RateLimitedError:
            pass
    return count


def rejections(scope: str) -> float:
    value = REGISTRY.get_sample_value("ragserve:rate_limit_rejections_total", {"scope": scope})
    return value or 0.0


async def test_each_key_has_its_own_bucket_and_the_tenant_caps_them_all() -> None:
    rl = limiter(key_burst=3, key_rate=0.01, tenant_burst=5, tenant_rate=0.01)
    assert await admitted(rl, ALICE, 10) == 3
    assert await admitted(rl, BOB, 10) == 2  # the tenant's 5 are spent
    assert await admitted(rl, EVE, 10) == 3  # another tenant is untouched


async def test_a_keys_own_limit_replaces_the_default() -> None:
    rl = limiter(key_burst=3, key_rate=0.01)
    generous = Principal("acme", "key:vip", rate_limit=RateLimitOverride(burst=7, rate_per_s=0.01))
    assert await admitted(rl, generous, 10) == 7
    assert await admitted(rl, ALICE, 10) == 3


async def test_a_refusal_says_which_limit_when_to_retry_and_the_quota() -> None:
    rl = limiter(key_burst=2, key_rate=0.5)
    first = await rl.admit(ALICE)
    assert first is not None
    assert first.headers() == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "1",
        "RateLimit-Reset": "2",
        "RateLimit-Policy": "2;w=4",
    }
    await rl.admit(ALICE)
    before = rejections("key")
    with pytest.raises(RateLimitedError) as caught:
        await rl.admit(ALICE)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limited"
    assert error.retry_after == pytest.approx(2, abs=0.1)
    assert "API key" in error.message
    assert error.headers["RateLimit-Remaining"] == "0"
    assert rejections("key") == before + 1


async def test_generated_tokens_are_charged_after_the_turn_and_then_refuse() -> None:
    rl = limiter(tokens_burst=100, tokens_rate=1)
    await rl.admit(ALICE)
    await rl.on_usage("acme", ALICE.subject, 150)
    with pytest.raises(RateLimitedError) as caught:
        await rl.admit(ALICE)
    assert "token budget" in caught.value.message
    # 50 tokens of debt plus the one a request needs, at 1 token/s.
    assert caught.value.retry_after == pytest.approx(51, abs=1)
    # The tenant's budget paid too, so Bob is refused by the tenant's budget.
    with pytest.raises(RateLimitedError, match="token budget of this tenant"):
        await rl.admit(BOB)


async def test_usage_without_a_subject_charges_the_tenant_only() -> None:
    rl = limiter(tokens_burst=10, tokens_rate=0.01)
    await rl.on_usage("acme", None, 10)
    with pytest.raises(RateLimitedError, match="tenant"):
        await rl.admit(ALICE)
    await rl.admit(EVE)


async def test_turn_slots_cap_the_turns_a_key_runs_at_once() -> None:
    rl = limiter(max_turns_per_key=2)
    async with rl.turn_slot(ALICE), rl.turn_slot(ALICE):
        assert rl.running_turns(ALICE.subject) == 2
        with pytest.raises(TooManyTurnsError) as caught:
            async with rl.turn_slot(ALICE):
                pass
        assert caught.value.code == "too_many_turns"
        assert caught.value.status_code == 429
        async with rl.turn_slot(BOB):  # another key has its own slots
            pass
    assert rl.running_turns(ALICE.subject) == 0
    async with rl.turn_slot(ALICE):  # slots come back when turns end, errors included
        pass


async def test_a_failing_turn_gives_its_slot_back() -> None:
    rl = limiter(max_turns_per_key=1)
    with pytest.raises(RuntimeError):
        async with rl.turn_slot(ALICE):
            raise RuntimeError("generation failed")
    assert rl.running_turns(ALICE.subject) == 0


async def test_disabled_limits_let_everything_through() -> None:
    rl = limiter(enabled=False, key_burst=1, max_turns_per_key=1)
    assert await admitted(rl, ALICE, 5) == 5
    await rl.on_usage("acme", ALICE.subject, 10**9)
    async with rl.turn_slot(ALICE), rl.turn_slot(ALICE):
        pass


class _Down(TokenBuckets):
    async def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        raise BucketsUnavailableError("connection refused")

    async def close(self) -> None:
        pass


async def test_an_unreachable_store_lets_requests_through_and_counts_it() -> None:
    rl = RateLimiter(_Down(), RateLimitSettings(key_burst=1))
    before = REGISTRY.get_sample_value("ragserve:rate_limit_backend_errors_total") or 0
    assert await rl.admit(ALICE) is None
    await rl.on_usage("acme", ALICE.subject, 5)
    after = REGISTRY.get_sample_value("ragserve:rate_limit_backend_errors_total")
    assert after == before + 2


async def test_an_unreachable_store_hands_the_decision_to_the_fallback_buckets() -> None:
    rl = RateLimiter(_Down(), RateLimitSettings(key_burst=1), fallback=InProcessTokenBuckets())
    assert await rl.admit(ALICE) is not None
    with pytest.raises(RateLimitedError):
        await rl.admit(ALICE)


async def test_console_sign_in_attempts_fall_back_to_local_buckets_and_count_the_outage() -> None:
    throttle = LoginThrottle(_Down(), ConsoleSettings(login_attempts_per_account=2))
    before = REGISTRY.get_sample_value("ragserve:rate_limit_backend_errors_total") or 0
    await throttle.admit("ana", "10.0.0.1")
    await throttle.failed("ana")
    await throttle.failed("ana")
    with pytest.raises(RateLimitedError):
        await throttle.admit("ana", "10.0.0.1")
    after = REGISTRY.get_sample_value("ragserve:rate_limit_backend_errors_total")
    assert after == before + 4
