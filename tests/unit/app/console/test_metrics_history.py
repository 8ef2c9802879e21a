"""The Metrics page's history: real prometheus_client families in a private registry,
observed between samples taken on a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric

from app.console.charts import line_chart
from app.console.metrics_history import PANELS, MetricsHistory, histogram_quantile

if TYPE_CHECKING:
    from collections.abc import Callable

# The app's own bucket bounds (app/core/metrics.py STAGE_LATENCY).
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
T0 = 1_700_000_000.0


class Families:
    """The families the history reads, under their real names, on a private registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.http = Counter(
            "ragserve:http_requests_total", "", ["method", "route", "status"], registry=r
        )
        self.turns = Counter(
            "ragserve:turns_total", "", ["finish_reason", "model", "version"], registry=r
        )
        self.errors = Counter("ragserve:errors_total", "", ["code"], registry=r)
        self.stages = Histogram(
            "ragserve:turn_stage_duration_seconds",
            "",
            ["stage", "model", "version"],
            buckets=BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ragserve:tokens_total", "", ["model", "version", "tenant", "kind"], registry=r
        )
        self.waiting = Gauge("ragserve:num_requests_waiting", "", ["model_name"], registry=r)
        self.chunk = Counter("ragserve:chunk_cache_lookups_total", "", ["result"], registry=r)
        self.answers = Counter("ragserve:response_cache_lookups_total", "", ["result"], registry=r)
        self.verdicts = Counter(
            "ragserve:safety_verdicts_total", "", ["stage", "category", "action"], registry=r
        )

    def observe(self, stage: str, values: list[float], model: str = "m") -> None:
        for v in values:
            self.stages.labels(stage, model, "v1").observe(v)


@pytest.fixture
def fam() -> Families:
    return Families()


@pytest.fixture
def history(fam: Families) -> MetricsHistory:
    return MetricsHistory(fam.registry, interval_s=10, window_s=3600)


def _values(history: MetricsHistory, name: str) -> list[float]:
    return [v for _, v in history.series(name)]


def test_the_first_sample_gives_no_point_and_the_second_one_rates(
    fam: Families, history: MetricsHistory
) -> None:
    history.sample(T0)
    for _ in range(45):
        fam.http.labels("GET", "/v1/x", "200").inc()
    for _ in range(5):
        fam.http.labels("POST", "/v1/y", "503").inc()
    fam.http.labels("GET", "/v1/x", "404").inc(10)  # a client error is not an error here
    fam.turns.labels("stop", "m", "v1").inc(20)
    fam.errors.labels("generation_failed").inc(2)
    fam.tokens.labels("m", "v1", "t", "completion").inc(1000)
    fam.tokens.labels("m", "v1", "t", "prompt").inc(99999)
    assert history.series("http_requests") == []
    history.sample(T0 + 10)
    assert history.series("http_requests") == [(T0 + 10, 6.0)]
    assert history.series("http_5xx") == [(T0 + 10, 0.5)]
    assert history.series("turns") == [(T0 + 10, 2.0)]
    assert history.series("turn_errors") == [(T0 + 10, 0.2)]
    assert history.series("output_tokens") == [(T0 + 10, 100.0)]


def test_an_idle_interval_rates_zero_but_has_no_quantile(
    fam: Families, history: MetricsHistory
) -> None:
    fam.observe("total", [1.0])
    history.sample(T0)
    history.sample(T0 + 10)
    assert _values(history, "http_requests") == [0.0]
    assert history.series("latency_p50") == []
    assert history.series("queue_waiting") == []  # no engine gauge registered a child


def test_quantiles_of_a_uniform_distribution_are_exact(
    fam: Families, history: MetricsHistory
) -> None:
    """Linear interpolation is exact when observations spread evenly inside buckets."""
    history.sample(T0)
    fam.observe("total", [(i + 0.5) / 1000 for i in range(1000)])  # uniform on [0, 1)
    history.sample(T0 + 10)
    assert _values(history, "latency_p50") == [pytest.approx(0.5)]
    assert _values(history, "latency_p95") == [pytest.approx(0.95)]
    assert _values(history, "latency_p99") == [pytest.approx(0.99)]


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormvariate(-1.0, 1.0),
        lambda rng: rng.expovariate(2.0),
        lambda rng: 0.2 + rng.random() * 3,
    ],
    ids=["lognormal", "exponential", "uniform-shifted"],
)
def test_quantiles_fall_in_the_bucket_of_the_true_quantile(
    fam: Families, history: MetricsHistory, draw: Callable[[random.Random], float]
) -> None:
    rng = random.Random(7)
    values = sorted(draw(rng) for _ in range(5000))
    history.sample(T0)
    fam.observe("first_token", values)
    history.sample(T0 + 10)
    bounds = (0.0, *BUCKETS, math.inf)
    for name, q in (("ttft_p50", 0.5), ("ttft_p95", 0.95), ("ttft_p99", 0.99)):
        true = values[math.ceil(q * len(values)) - 1]
        (estimate,) = _values(history, name)
        low, high = next((lo, hi) for lo, hi in itertools.pairwise(bounds) if lo < true <= hi)
        assert low <= estimate <= high, (name, true, estimate)


def test_each_interval_counts_only_its_own_observations(
    fam: Families, history: MetricsHistory
) -> None:
    history.sample(T0)
    fam.observe("total", [0.02] * 100)
    history.sample(T0 + 10)
    fam.observe("total", [3.0] * 100)
    fam.observe("first_token", [0.3] * 10)  # another stage is another series
    history.sample(T0 + 20)
    fast, slow = _values(history, "latency_p50")
    assert 0.01 <= fast <= 0.025
    assert 2.5 <= slow <= 5
    assert [t for t, _ in history.series("ttft_p50")] == [T0 + 20]


def test_label_sets_are_summed_and_other_stages_left_out(
    fam: Families, history: MetricsHistory
) -> None:
    history.sample(T0)
    fam.observe("total", [0.2] * 50, model="a")
    fam.observe("total", [0.2] * 50, model="b")
    fam.observe("retrieve", [100.0] * 1000)
    history.sample(T0 + 10)
    assert 0.1 <= _values(history, "latency_p99")[0] <= 0.25


def test_observations_past_the_last_bound_answer_the_last_bound(
    fam: Families, history: MetricsHistory
) -> None:
    history.sample(T0)
    fam.observe("total", [500.0] * 10)
    history.sample(T0 + 10)
    assert _values(history, "latency_p50") == [120.0]


def test_histogram_quantile_like_prometheus() -> None:
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {"1.0": 0, "+Inf": 0}) is None
    assert histogram_quantile(0.5, {"1.0": 4, "2.0": 8, "+Inf": 8}) == pytest.approx(1.0)
    assert histogram_quantile(0.75, {"1.0": 4, "2.0": 8, "+Inf": 8}) == pytest.approx(1.5)
    assert histogram_quantile(0.25, {"1.0": 4, "2.0": 8, "+Inf": 8}) == pytest.approx(0.5)
    # A bucket read lower than the one before it (a scrape racing an observation).
    assert histogram_quantile(0.5, {"1.0": 4, "2.0": 3, "4.0": 8, "+Inf": 8}) == pytest.approx(1.0)


def test_gauges_are_summed_over_models(fam: Families, history: MetricsHistory) -> None:
    fam.waiting.labels("a").set(3)
    fam.waiting.labels("b").set(4)
    history.sample(T0)
    history.sample(T0 + 10)
    fam.waiting.labels("b").set(0)
    history.sample(T0 + 20)
    assert _values(history, "queue_waiting") == [7.0, 3.0]


def test_cache_hit_rates(fam: Families, history: MetricsHistory) -> None:
    history.sample(T0)
    fam.chunk.labels("hit").inc(3)
    fam.chunk.labels("miss").inc(1)
    fam.answers.labels("exact").inc(1)
    fam.answers.labels("semantic").inc(1)
    fam.answers.labels("miss").inc(2)
    fam.answers.labels("skipped").inc(50)  # not cacheable: no lookup to hit
    history.sample(T0 + 10)
    history.sample(T0 + 20)  # no lookups: no rate
    assert history.series("chunk_cache_hit_rate") == [(T0 + 10, 75.0)]
    assert history.series("response_cache_hit_rate") == [(T0 + 10, 50.0)]


def test_verdicts_per_category_per_interval_and_over_the_window(
    fam: Families, history: MetricsHistory
) -> None:
    history.sample(T0)
    fam.verdicts.labels("input", "pii", "redact").inc(2)
    fam.verdicts.labels("output", "pii", "redact").inc(1)
    history.sample(T0 + 10)
    fam.verdicts.labels("input", "injection", "block").inc(4)
    history.sample(T0 + 20)
    assert _values(history, "verdicts:pii") == [3.0, 0.0]
    assert history.series("verdicts:injection") == [(T0 + 20, 4.0)]
    assert history.verdicts_by_category() == {"pii": 3.0, "injection": 4.0}
    assert set(history.snapshot()["verdicts"]) == {"pii", "injection"}


def test_a_removed_label_set_counts_nothing_and_a_recreated_one_counts_anew(
    fam: Families, history: MetricsHistory
) -> None:
    fam.errors.labels("a").inc(5)
    history.sample(T0)
    fam.errors.remove("a")
    fam.errors.labels("b").inc(1)
    history.sample(T0 + 10)
    fam.errors.labels("a").inc(2)  # created again: a reset, counted from zero
    history.sample(T0 + 20)
    assert _values(history, "turn_errors") == [0.1, 0.2]


def test_points_older_than_the_window_are_dropped(fam: Families) -> None:
    history = MetricsHistory(fam.registry, interval_s=10, window_s=60)
    for i in range(20):
        fam.http.labels("GET", "/", "200").inc(i)
        history.sample(T0 + 10 * i)
    times = [t for t, _ in history.series("http_requests")]
    assert times == [T0 + 10 * i for i in range(14, 20)]
    assert history.verdicts_by_category() == {}


def test_a_clock_going_backwards_adds_no_point(fam: Families, history: MetricsHistory) -> None:
    history.sample(T0)
    history.sample(T0 - 5)
    history.sample(T0 + 5)
    assert [t for t, _ in history.series("http_requests")] == [T0 + 5]


def test_snapshot_fills_every_panel_and_draws(fam: Families, history: MetricsHistory) -> None:
    history.sample(T0)
    fam.http.labels("GET", "/", "200").inc(10)
    fam.observe("total", [0.3, 0.4])
    fam.observe("first_token", [0.05])
    fam.waiting.labels("m").set(2)
    history.sample(T0 + 10)
    fam.http.labels("GET", "/", "500").inc(1)
    history.sample(T0 + 20)
    snap = history.snapshot()
    assert list(snap) == [p.key for p in PANELS]
    assert list(snap["requests"]) == ["HTTP requests", "HTTP 5xx", "turns", "turn errors"]
    assert list(snap["latency"]) == ["p50", "p95", "p99"]
    assert list(snap["queue"]) == ["engine waiting"]
    assert snap["cache"] == {}
    for panel in PANELS:
        svg = line_chart(snap[panel.key], title=panel.title, unit=panel.unit, now=T0 + 20)
        root = ET.fromstring(svg)  # noqa: S314 - our own output, parsed to check it
        drawn = root.findall("{http://www.w3.org/2000/svg}polyline") + root.findall(
            "{http://www.w3.org/2000/svg}circle"
        )
        assert len(drawn) == len(snap[panel.key])


def test_a_sample_reads_only_the_drawn_families_quickly() -> None:
    """Guards the page's cost: a large registry sampled every 10 s stays cheap."""
    fam = Families()
    for route in range(40):
        for status in ("200", "404", "500"):
            fam.http.labels("GET", f"/r{route}", status).inc()
    for stage in ("total", "first_token", "retrieve", "generate"):
        for model in range(5):
            fam.observe(stage, [0.1], model=f"m{model}")
    unrelated = _Unrelated()
    fam.registry.register(unrelated)
    history = MetricsHistory(fam.registry)
    started = time.perf_counter()
    for i in range(100):
        history.sample(T0 + 10 * i)
    per_sample = (time.perf_counter() - started) / 100
    assert per_sample < 0.025  # about 5 ms here; a bound for pathological costs only
    assert unrelated.collected == 0


class _Unrelated:
    """A family the page does not draw, counting how often it is collected."""

    def __init__(self) -> None:
        self.collected = 0

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily("ragserve:unrelated", "")]

    def collect(self) -> list[Metric]:
        self.collected += 1
        return self.describe()


def test_rejects_a_window_shorter_than_the_interval(fam: Families) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        MetricsHistory(fam.registry, interval_s=10, window_s=5)


async def test_start_samples_until_aclose(fam: Families) -> None:
    ticks = iter(range(1000))
    history = MetricsHistory(
        fam.registry, interval_s=0.01, window_s=60, clock=lambda: T0 + next(ticks)
    )
    history.start()
    history.start()  # once only
    for _ in range(500):
        if len(history.series("http_requests")) >= 2:
            break
        await asyncio.sleep(0.01)
    await history.aclose()
    taken = len(history.series("http_requests"))
    assert taken >= 2
    await asyncio.sleep(0.05)
    assert len(history.series("http_requests")) == taken
    await history.aclose()  # a second close is a no-op


async def test_run_survives_a_failing_sample(
    fam: Families, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = MetricsHistory(fam.registry, interval_s=0.01, window_s=60)
    calls = 0
    real = history.sample

    def flaky(now: float | None = None) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a collector broke")
        real(now)

    monkeypatch.setattr(history, "sample", flaky)
    stop = asyncio.Event()
    task = asyncio.create_task(history.run(stop))
    for _ in range(500):
        if calls >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert calls >= 3
