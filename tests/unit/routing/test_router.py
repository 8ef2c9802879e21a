"""The router over in-process engines: retries, health, affinity, streams, sync, metrics."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from app.routing.endpoints import display_url
from app.routing.router import Router
from app.routing.specs import EMBEDDED_URL, VersionSpec
from inference.errors import EngineOverloadedError, EngineUnavailableError, InvalidRequestError
from inference.types import FinishEvent, FinishReason, Priority, TokenEvent
from tests.unit.routing.fakes import (
    Factory,
    FakeEngine,
    Harness,
    collect,
    key_for,
    remote,
    request,
    text_of,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    Make = Callable[..., Harness]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[Harness] = []

    def build(**kwargs: Any) -> Harness:
        made.append(Harness.build(**kwargs))
        return made[-1]

    yield build
    for harness in made:
        await harness.router.stop()


async def test_a_request_streams_from_one_endpoint(make: Make) -> None:
    h = make()
    version = remote("http://a")
    await h.router.sync([version])
    stream = h.router.generate(version, request("r1"))
    first = await anext(stream)
    assert first == TokenEvent(0, "Hel")
    assert h.router.endpoint_of("r1") == "http://a"
    assert h.metric("router_requests_outstanding", version="v1", endpoint="http://a") == 1
    rest = await collect(stream)
    assert text_of([first, *rest]) == "Hello!"
    assert rest[-1] == FinishEvent(FinishReason.STOP, 3, 3)
    assert (stream.endpoint, stream.attempts) == ("http://a", 1)
    assert h.router.endpoint_of("r1") is None
    assert h.metric("router_requests_total", version="v1", endpoint="http://a", outcome="ok") == 1
    assert h.metric("router_requests_outstanding", version="v1", endpoint="http://a") == 0
    assert h.metric("router_endpoint_healthy", version="v1", endpoint="http://a") == 1
    h.router.check_capacity(version)  # a remote endpoint is never refused on a guess
    assert h.router.snapshot() == {"m@v1": h.router.health(version)}


async def test_a_failure_before_the_first_token_is_retried_elsewhere(make: Make) -> None:
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    h.engine("http://a").mode = "unavailable"
    stream = h.router.generate(version, request(), affinity_key=key_for("http://a", version))
    assert text_of(await collect(stream)) == "Hello!"
    assert (stream.endpoint, stream.attempts) == ("http://b", 2)
    assert h.status(version, "http://a").failures == 1
    assert h.metric("router_retries_total", version="v1") == 1
    labels = {"version": "v1", "endpoint": "http://a"}
    assert h.metric("router_requests_total", outcome="unavailable", **labels) == 1


async def test_an_error_before_any_token_is_retried_too(make: Make) -> None:
    """A stream that ends in an error before its first token showed the client nothing."""
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    h.engine("http://a").mode = "error_first"
    stream = h.router.generate(version, request(), affinity_key=key_for("http://a", version))
    assert text_of(await collect(stream)) == "Hello!"
    assert stream.endpoint == "http://b"


async def test_no_retry_once_the_deadline_has_passed(make: Make) -> None:
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    h.engine("http://a").mode = "unavailable"
    h.engine("http://a").delay_s = 0.05
    deadline = time.monotonic() + 0.02
    stream = h.router.generate(
        version, request(deadline=deadline), affinity_key=key_for("http://a", version)
    )
    with pytest.raises(EngineUnavailableError, match="refused"):
        await collect(stream)
    assert h.engine("http://b").requests == []


async def test_no_retry_after_the_first_token(make: Make) -> None:
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    h.engine("http://a").mode = "break"
    stream = h.router.generate(version, request(), affinity_key=key_for("http://a", version))
    events = await collect(stream)
    assert events == [
        TokenEvent(0, "Hel"),
        FinishEvent(FinishReason.ERROR, 3, 1, error="connection reset"),
    ]
    assert h.engine("http://b").requests == []
    assert h.status(version, "http://a").failures == 1
    assert h.status(version, "http://a").last_error == "connection reset"
    labels = {"version": "v1", "endpoint": "http://a"}
    assert h.metric("router_requests_total", outcome="error", **labels) == 1


async def test_all_overloaded_answers_overloaded_with_the_shortest_wait(make: Make) -> None:
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    for url, wait in (("http://a", 3.0), ("http://b", 1.5)):
        h.engine(url).mode = "overloaded"
        h.engine(url).retry_after = wait
    with pytest.raises(EngineOverloadedError) as caught:
        await collect(h.router.generate(version, request()))
    assert caught.value.retry_after == 1.5
    # Overload is no failure, but each endpoint asked for time: refuse before storing.
    assert h.status(version, "http://a").healthy
    h.clock.now += 1.0
    with pytest.raises(EngineOverloadedError) as refused:
        h.router.check_capacity(version)
    assert refused.value.retry_after == pytest.approx(0.5)
    h.clock.now += 0.5
    h.router.check_capacity(version)
    # The request's class reaches the engine's own check (a batch queue may be full).
    h.router.check_capacity(version, Priority.BATCH)
    assert (
        Priority.BATCH in h.engine("http://a").capacity_asked + h.engine("http://b").capacity_asked
    )


async def test_overloaded_wins_over_unavailable(make: Make) -> None:
    """The client is told to come back (429), not that the service is gone (503)."""
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    h.engine("http://a").mode = "overloaded"
    h.engine("http://b").mode = "unavailable"
    with pytest.raises(EngineOverloadedError):
        await collect(h.router.generate(version, request()))


async def test_a_bad_request_is_not_retried(make: Make) -> None:
    h = make()
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    for url in ("http://a", "http://b"):
        h.engine(url).mode = "invalid"
    with pytest.raises(InvalidRequestError):
        await collect(h.router.generate(version, request()))
    tried = h.engine("http://a").requests + h.engine("http://b").requests
    assert len(tried) == 1
    assert all(s.failures == 0 for s in h.router.health(version))


async def test_attempts_are_bounded(make: Make) -> None:
    h = make(max_attempts=3)
    version = remote("http://a", "http://b", "http://c", "http://d")
    await h.router.sync([version])
    for engine in h.factory.engines.values():
        engine.mode = "unavailable"
    stream = h.router.generate(version, request())
    with pytest.raises(EngineUnavailableError):
        await collect(stream)
    assert stream.attempts == 3
    assert sum(len(e.requests) for e in h.factory.engines.values()) == 3


async def test_closing_the_stream_aborts_upstream(make: Make) -> None:
    h = make()
    version = remote("http://a")
    await h.router.sync([version])
    h.engine("http://a").hold()
    stream = h.router.generate(version, request("r1"))
    assert isinstance(await anext(stream), TokenEvent)
    await stream.aclose()
    assert h.engine("http://a").closed == ["r1"]
    assert h.status(version, "http://a").outstanding == 0
    labels = {"version": "v1", "endpoint": "http://a"}
    assert h.metric("router_requests_total", outcome="cancelled", **labels) == 1


async def test_abort_reaches_the_endpoint_running_the_request(make: Make) -> None:
    h = make()
    version = remote("http://a")
    await h.router.sync([version])
    h.engine("http://a").hold()
    stream = h.router.generate(version, request("r1"))
    await anext(stream)
    await h.router.abort("r1")
    await h.router.abort("unknown")
    events = await collect(stream)
    assert events[-1].reason is FinishReason.CANCELLED  # type: ignore[union-attr]
    assert h.engine("http://a").aborted == ["r1"]


async def test_cooldown_moves_a_conversation_and_a_probe_brings_it_back(make: Make) -> None:
    h = make(cooldown_s=5)
    version = remote("http://a", "http://b")
    await h.router.sync([version])
    key = key_for("http://a", version)
    h.engine("http://a").mode = "unavailable"
    for n in range(3):
        stream = h.router.generate(version, request(f"r{n}"), affinity_key=key)
        await collect(stream)
        assert stream.endpoint == "http://b"
    assert h.status(version, "http://a").state == "cooling"
    assert h.metric("router_endpoint_healthy", version="v1", endpoint="http://a") == 0
    assert h.metric("router_endpoint_cooldowns_total", version="v1", endpoint="http://a") == 1
    stream = h.router.generate(version, request("r3"), affinity_key=key)
    await collect(stream)
    assert (stream.endpoint, stream.attempts) == ("http://b", 1)  # a is not even tried
    assert len(h.engine("http://a").requests) == 3

    h.clock.now += 5
    h.engine("http://a").mode = "ok"
    assert h.status(version, "http://a").state == "probing"
    stream = h.router.generate(version, request("r4"), affinity_key=key)
    await collect(stream)
    assert stream.endpoint == "http://b"  # no traffic before a probe says it is back
    await h.router.prober.probe_all()
    stream = h.router.generate(version, request("r5"), affinity_key=key)
    await collect(stream)
    assert stream.endpoint == "http://a"
    assert h.metric("router_endpoint_healthy", version="v1", endpoint="http://a") == 1


async def test_with_every_endpoint_cooling_the_router_tries_anyway(make: Make) -> None:
    h = make(cooldown_s=60)
    version = remote("http://a")
    await h.router.sync([version])
    h.engine("http://a").mode = "unavailable"
    for n in range(3):
        with pytest.raises(EngineUnavailableError):
            await collect(h.router.generate(version, request(f"r{n}")))
    assert h.status(version, "http://a").state == "cooling"
    h.engine("http://a").mode = "ok"  # back before any probe could tell
    assert text_of(await collect(h.router.generate(version, request("r3")))) == "Hello!"
    assert h.status(version, "http://a").state == "healthy"


async def test_two_routers_send_a_conversation_to_the_same_endpoint(make: Make) -> None:
    one, two = make(rng=random.Random(1)), make(rng=random.Random(2))
    version = remote("http://a", "http://b", ("http://c", 2.0))
    await one.router.sync([version])
    await two.router.sync([version])
    chosen = set()
    for n in range(30):
        first = one.router.generate(version, request(f"x{n}"), affinity_key=f"conv-{n}")
        second = two.router.generate(version, request(f"y{n}"), affinity_key=f"conv-{n}")
        await collect(first)
        await collect(second)
        assert first.endpoint == second.endpoint
        chosen.add(first.endpoint)
    assert len(chosen) == 3


async def test_concurrent_requests_spread_by_weight(make: Make) -> None:
    h = make()
    version = remote(("http://a", 2.0), "http://b")
    await h.router.sync([version])
    for engine in h.factory.engines.values():
        engine.hold()
    streams = [h.router.generate(version, request(f"r{n}")) for n in range(30)]
    for stream in streams:
        await anext(stream)
    assert [s.outstanding for s in h.router.health(version)] == [20, 10]
    for stream in streams:
        await stream.aclose()
    assert [s.outstanding for s in h.router.health(version)] == [0, 0]


async def test_sync_keeps_unchanged_endpoints_and_stops_removed_ones(make: Make) -> None:
    h = make()
    version = remote("http://a", "http://b", "http://c")
    await h.router.sync([version])
    a, b, c = (h.engine(u) for u in ("http://a", "http://b", "http://c"))
    assert (a.starts, h.factory.built) == (1, 3)
    a.mode = "unavailable"
    await collect(
        h.router.generate(version, request("r0"), affinity_key=key_for("http://a", version))
    )
    a.mode = "ok"
    c.hold()
    held = h.router.generate(version, request("held"), affinity_key=key_for("http://c", version))
    await anext(held)

    reweighted = remote(("http://a", 3.0), version="v1")
    await h.router.sync([reweighted])
    assert h.factory.built == 3  # a kept its engine, its failure and its new weight
    status = h.status(reweighted, "http://a")
    assert (status.failures, status.weight) == (1, 3.0)
    assert (a.stops, b.stops, c.stops) == (0, 1, 0)  # c still streams
    await c.release()
    assert text_of(await collect(held)) == "lo!"
    await asyncio.sleep(0)  # the stop runs as a task once the last request ends
    assert c.stops == 1

    await h.router.sync([remote("http://a", upstream_model="other")])
    assert a.stops == 1
    assert h.engine("http://a") is not a
    await h.router.stop()
    assert h.engine("http://a").stops == 1


async def test_an_endpoint_that_fails_to_start_is_started_by_the_prober(make: Make) -> None:
    h = make()
    h.factory.configure["http://a"] = {"start_error": OSError("connection refused")}
    version = remote("http://a")
    await h.router.sync([version])
    status = h.status(version, "http://a")
    assert (status.state, status.healthy) == ("starting", False)
    assert status.last_probe_error == "start failed: OSError: connection refused"
    with pytest.raises(EngineUnavailableError, match="can serve"):
        await collect(h.router.generate(version, request()))
    h.engine("http://a").start_error = None
    await h.router.prober.probe_all()
    assert h.status(version, "http://a").healthy
    assert text_of(await collect(h.router.generate(version, request()))) == "Hello!"


async def test_the_embedded_engine_is_routed_never_cooled_nor_stopped(make: Make) -> None:
    own = FakeEngine(EMBEDDED_URL)
    h = make(embedded=own)
    version = VersionSpec(model="m", version="local", backend="embedded")
    await h.router.sync([version])
    assert own.starts == 0
    own.mode = "unavailable"
    for _ in range(4):
        with pytest.raises(EngineUnavailableError):
            await collect(h.router.generate(version, request()))
    assert h.status(version, EMBEDDED_URL).state == "healthy"
    own.refuse_capacity = True
    with pytest.raises(EngineOverloadedError):
        h.router.check_capacity(version)
    assert h.router.count_tokens(version, "two words") == 2
    await h.router.sync([])
    await h.router.stop()
    assert own.stops == 0


async def test_a_version_not_routed_here_is_unavailable(make: Make) -> None:
    h = make()  # no embedded engine: an embedded version cannot be served here
    local = VersionSpec(model="m", version="local", backend="embedded")
    await h.router.sync([local])
    with pytest.raises(EngineUnavailableError, match="not served by this node"):
        await collect(h.router.generate(remote("http://a", version="v9"), request()))
    with pytest.raises(EngineUnavailableError, match="can serve"):
        await collect(h.router.generate(local, request()))


async def test_an_endpoint_the_factory_refuses_is_left_out(make: Make) -> None:
    """A malformed URL in the registry costs that endpoint, not the version or the sync."""
    h = make()
    h.factory.refuse.add("ftp://nonsense")
    version = remote("ftp://nonsense", "http://a")
    await h.router.sync([version])
    assert [s.url for s in h.router.health(version)] == ["http://a"]
    assert text_of(await collect(h.router.generate(version, request()))) == "Hello!"


def test_labels_and_views_never_show_credentials() -> None:
    assert display_url("https://user:secret@gpu-1:8000/v1?key=x#f") == "https://gpu-1:8000/v1"
    assert display_url("http://[::1]:9000") == "http://[::1]:9000"


def test_max_attempts_must_allow_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Router(Factory(), max_attempts=0, registry=CollectorRegistry())
