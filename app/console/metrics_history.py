"""The last hour of this process's metrics, sampled from its Prometheus registry.

The console's Metrics page draws these series as SVG (``app.console.charts``).
Every ``interval_s`` the history reads the few families the page shows and keeps
one point per interval, derived from that reading and the one before it, for
``window_s``:

==========================  ===============================================================
series                      computed from (per interval, between two readings)
==========================  ===============================================================
``http_requests``           Δ ``ragserve:http_requests_total`` / Δt (every route and status)
``http_5xx``                the same, for a status of 500 or more
``turns``                   Δ ``ragserve:turns_total`` / Δt (chat turns, every transport)
``turn_errors``             Δ ``ragserve:errors_total`` / Δt (error frames sent to clients)
``latency_p50/p95/p99``     ``histogram_quantile`` over the bucket deltas of
                            ``ragserve:turn_stage_duration_seconds{stage="total"}``
``ttft_p50/p95/p99``        the same with ``stage="first_token"`` (from the generation's
                            start, retrieval excluded)
``output_tokens``           Δ ``ragserve:tokens_total{kind="completion"}`` / Δt
``queue_waiting/running``   gauges ``ragserve:num_requests_waiting`` / ``_running``
                            (embedded engines only), summed over models
``router_outstanding``      gauge ``ragserve:router_requests_outstanding``, summed
``chunk_cache_hit_rate``    % of Δ ``ragserve:chunk_cache_lookups_total`` that hit
``response_cache_hit_rate`` % of Δ ``ragserve:response_cache_lookups_total`` answered
                            (exact or semantic) of those looked up (``skipped`` excluded)
``verdicts:<category>``     Δ ``ragserve:safety_verdicts_total`` of that category (a count)
==========================  ===============================================================

An interval with nothing to measure (no turn finished, no cache lookup, an engine
gauge not registered) has no point for that series rather than a zero.

NOTE: the app serves the default registry without Prometheus' multi-process mode,
so this is one process's view; a deployment of several nodes shows each node's
own. Cost per tenant is read from SQL instead (``app.console.tenant_costs``), so
it is the whole deployment's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from prometheus_client import REGISTRY, CollectorRegistry

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "PANELS",
    "MetricsHistory",
    "Panel",
    "Series",
    "histogram_quantile",
]

log = structlog.get_logger(__name__)

Series = list[tuple[float, float]]
"""Points ``(unix time, value)``, oldest first."""

Reading = dict[str, dict[tuple[str, ...], tuple[str, float]]]
"""One sample: a probe's key -> a label set's values -> its group and its value."""

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart of the Metrics page: ``snapshot()[key]`` drawn with this title and unit."""

    key: str
    title: str
    unit: str
    lines: tuple[tuple[str, str], ...] = ()
    """Each line's legend label and series name."""
    prefix: str = ""
    """When set, also a line for every series named ``prefix + label``."""


PANELS = (
    Panel(
        "requests",
        "Requests and errors",
        "/s",
        (
            ("HTTP requests", "http_requests"),
            ("HTTP 5xx", "http_5xx"),
            ("turns", "turns"),
            ("turn errors", "turn_errors"),
        ),
    ),
    Panel("latency", "Turn latency", "s", tuple((p, f"latency_{p}") for p in QUANTILES)),
    Panel("ttft", "Time to first token", "s", tuple((p, f"ttft_{p}") for p in QUANTILES)),
    Panel("tokens", "Output tokens", "/s", (("completion tokens", "output_tokens"),)),
    Panel(
        "queue",
        "Queue depth",
        "requests",
        (
            ("engine waiting", "queue_waiting"),
            ("engine running", "queue_running"),
            ("router outstanding", "router_outstanding"),
        ),
    ),
    Panel(
        "cache",
        "Cache hit rate",
        "%",
        (("chunk cache", "chunk_cache_hit_rate"), ("response cache", "response_cache_hit_rate")),
    ),
    Panel("verdicts", "Safety verdicts by category", "per interval", prefix="verdicts:"),
)
"""The line charts ``snapshot()`` fills, in page order."""


@dataclass(frozen=True, slots=True)
class _Probe:
    """Sum the samples named ``sample`` whose labels match ``where``, grouped by ``by``."""

    key: str
    sample: str
    where: tuple[tuple[str, str], ...] = ()
    by: str | None = None


_STAGES = "ragserve:turn_stage_duration_seconds_bucket"
_PROBES = (
    _Probe("http", "ragserve:http_requests_total", by="status"),
    _Probe("turns", "ragserve:turns_total"),
    _Probe("errors", "ragserve:errors_total"),
    _Probe("latency", _STAGES, where=(("stage", "total"),), by="le"),
    _Probe("ttft", _STAGES, where=(("stage", "first_token"),), by="le"),
    _Probe("tokens", "ragserve:tokens_total", where=(("kind", "completion"),)),
    _Probe("waiting", "ragserve:num_requests_waiting"),
    _Probe("running", "ragserve:num_requests_running"),
    _Probe("outstanding", "ragserve:router_requests_outstanding"),
    _Probe("chunk_cache", "ragserve:chunk_cache_lookups_total", by="result"),
    _Probe("response_cache", "ragserve:response_cache_lookups_total", by="result"),
    _Probe("verdicts", "ragserve:safety_verdicts_total", by="category"),
)


@dataclass(slots=True)
class _Point:
    at: float
    values: dict[str, float] = field(default_factory=dict)


class MetricsHistory:
    """Samples a registry every ``interval_s`` and keeps ``window_s`` of derived series.

    Args:
        registry: The registry to read (the process's default one unless a test
            passes its own).
        interval_s: Seconds between samples taken by ``run``.
        window_s: Seconds of points kept.
        clock: Unix time now; ``sample(now=...)`` overrides it per call.
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        interval_s: float = 10.0,
        window_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0 or window_s < interval_s:
            raise ValueError("need 0 < interval_s <= window_s")
        self.interval_s = interval_s
        self.window_s = window_s
        self._clock = clock
        # NOTE: only the families the page draws are collected (a restricted
        # registry), which costs what a scrape of them costs: about 5 µs a sample
        # line, so 1 to 5 ms every 10 s on a busy node. Only the last reading is
        # kept whole; each interval is summed down to a few dozen numbers at once,
        # so an hour of points is a few hundred small dicts, whatever the families'
        # label cardinality.
        self._source = registry.restricted_registry({p.sample for p in _PROBES})
        self._by_sample: dict[str, list[_Probe]] = {}
        for probe in _PROBES:
            self._by_sample.setdefault(probe.sample, []).append(probe)
        # A bound for a caller sampling faster than interval_s; ``run`` never reaches it.
        self._points: deque[_Point] = deque(maxlen=2 * math.ceil(window_s / interval_s) + 2)
        self._last: tuple[float, Reading] | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def sample(self, now: float | None = None) -> None:
        """Read the registry once and add the interval since the previous reading.

        Args:
            now: The reading's time (unix seconds); the clock's when ``None``.
        """
        at = self._clock() if now is None else now
        reading = self._read()
        last, self._last = self._last, (at, reading)
        if last is not None and at > last[0]:
            self._points.append(_Point(at, _derive(last[1], reading, at - last[0])))
        while self._points and self._points[0].at <= at - self.window_s:
            self._points.popleft()

    def series(self, name: str) -> Series:
        """One derived series (see the module docstring for the names), oldest first."""
        return [(p.at, p.values[name]) for p in self._points if name in p.values]

    def names(self) -> list[str]:
        """The series that have at least one point in the window, sorted."""
        return sorted({name for p in self._points for name in p.values})

    def snapshot(self) -> dict[str, dict[str, Series]]:
        """Every line the page draws: a ``Panel.key`` -> legend label -> series.

        Each value can be passed as is to ``charts.line_chart``, with the title and
        unit its ``PANELS`` entry gives; a line without points is left out.
        """
        names = self.names()
        drawn: dict[str, dict[str, Series]] = {}
        for panel in PANELS:
            lines = list(panel.lines)
            if panel.prefix:
                lines += [
                    (n.removeprefix(panel.prefix), n) for n in names if n.startswith(panel.prefix)
                ]
            drawn[panel.key] = {label: pts for label, name in lines if (pts := self.series(name))}
        return drawn

    def verdicts_by_category(self) -> dict[str, float]:
        """Safety verdicts that fired in the window, by category (for a bar chart)."""
        return {
            name.removeprefix("verdicts:"): sum(v for _, v in self.series(name))
            for name in self.names()
            if name.startswith("verdicts:")
        }

    async def run(self, stop_event: asyncio.Event) -> None:
        """Sample every ``interval_s`` until ``stop_event`` is set."""
        while not stop_event.is_set():
            try:
                self.sample()
            except Exception:
                # NOTE: a collector that raises must not end the page's history.
                log.exception("metrics_sample_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), self.interval_s)

    def start(self) -> None:
        """Start ``run`` as a task of the running loop (once; the lifespan calls it)."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self.run(self._stop), name="metrics-history")

    async def aclose(self) -> None:
        """Stop the task ``start`` began and wait for it; a no-op when none runs."""
        task, stop = self._task, self._stop
        self._task = self._stop = None
        if task is not None and stop is not None:
            stop.set()
            await task

    def _read(self) -> Reading:
        reading: Reading = {}
        for metric in self._source.collect():
            for s in metric.samples:
                for probe in self._by_sample.get(s.name, ()):
                    if all(s.labels.get(k) == v for k, v in probe.where):
                        group = s.labels.get(probe.by, "") if probe.by else ""
                        # NOTE: prometheus_client writes a family's labels in one order.
                        key = tuple(s.labels.values())
                        reading.setdefault(probe.key, {})[key] = (group, s.value)
        return reading


def _delta(before: Reading, after: Reading, key: str) -> dict[str, float]:
    """What a counter family counted between two readings, summed by group.

    NOTE: per label set, then summed: a label set that was removed and created again
    reads lower than before; like Prometheus' ``rate`` that is a reset, and its
    whole value is what it counted since.
    """
    old = before.get(key, {})
    sums: dict[str, float] = {}
    for labels, (group, value) in after.get(key, {}).items():
        previous = old.get(labels, (group, 0.0))[1]
        sums[group] = sums.get(group, 0.0) + (value - previous if value >= previous else value)
    return sums


def _gauge(reading: Reading, key: str) -> float:
    return sum(value for _, value in reading[key].values())


def _derive(before: Reading, after: Reading, dt: float) -> dict[str, float]:
    """The interval's value of every series (module docstring) from two readings."""
    values: dict[str, float] = {}
    http = _delta(before, after, "http")
    values["http_requests"] = sum(http.values()) / dt
    values["http_5xx"] = sum(n for status, n in http.items() if _server_error(status)) / dt
    values["turns"] = sum(_delta(before, after, "turns").values()) / dt
    values["turn_errors"] = sum(_delta(before, after, "errors").values()) / dt
    values["output_tokens"] = sum(_delta(before, after, "tokens").values()) / dt
    for key in ("latency", "ttft"):
        buckets = _delta(before, after, key)
        for p, q in QUANTILES.items():
            estimate = histogram_quantile(q, buckets)
            if estimate is not None:
                values[f"{key}_{p}"] = estimate
    for key, name in (
        ("waiting", "queue_waiting"),
        ("running", "queue_running"),
        ("outstanding", "router_outstanding"),
    ):
        if key in after:
            values[name] = _gauge(after, key)
    chunk = _delta(before, after, "chunk_cache")
    _rate(values, "chunk_cache_hit_rate", chunk.get("hit", 0.0), chunk.get("miss", 0.0))
    answers = _delta(before, after, "response_cache")
    hits = answers.get("exact", 0.0) + answers.get("semantic", 0.0)
    _rate(values, "response_cache_hit_rate", hits, answers.get("miss", 0.0))
    for category, n in _delta(before, after, "verdicts").items():
        values[f"verdicts:{category}"] = n
    return values


def _server_error(status: str) -> bool:
    return status.isdigit() and int(status) >= 500


def _rate(values: dict[str, float], name: str, hits: float, misses: float) -> None:
    if hits + misses > 0:
        values[name] = 100.0 * hits / (hits + misses)


def histogram_quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    """The ``q``-quantile of observations counted in cumulative histogram buckets.

    Prometheus' ``histogram_quantile``: find the bucket holding the rank ``q *
    count`` and interpolate linearly inside it (the first bucket starts at 0);
    a rank in the ``+Inf`` bucket answers the highest finite bound.

    Args:
        q: The quantile, in ``[0, 1]``.
        buckets: Cumulative counts by upper bound as Prometheus' ``le`` label writes
            it (``"0.5"``, ``"+Inf"``).

    Returns:
        The estimate, or ``None`` when the buckets hold no observation.
    """
    bounds = sorted((float(le), count) for le, count in buckets.items())
    if not bounds or not math.isinf(bounds[-1][0]):
        return None
    # NOTE: buckets are collected one by one while requests observe, so a later
    # bucket can read lower than an earlier one; like Prometheus, make them monotonic.
    cumulative: list[tuple[float, float]] = []
    for bound, count in bounds:
        cumulative.append((bound, max(count, cumulative[-1][1]) if cumulative else count))
    total = cumulative[-1][1]
    if total <= 0:
        return None
    rank = q * total
    i = next(i for i, (_, count) in enumerate(cumulative) if count >= rank and count > 0)
    upper, count = cumulative[i]
    if math.isinf(upper):
        return cumulative[i - 1][0] if i > 0 else None
    lower, below = cumulative[i - 1] if i > 0 else (min(0.0, upper), 0.0)
    return lower + (upper - lower) * (rank - below) / (count - below)
