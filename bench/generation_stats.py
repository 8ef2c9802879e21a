"""Per-request timings of the generation benchmark and the figures reported from them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(slots=True)
class Record:
    """What one request cost, in ``time.perf_counter()`` seconds.

    Attributes:
        rid: The request's id.
        arrival: When the client sent it.
        token_times: When each output token was produced: every decode step for
            the Hugging Face baselines and ``generate_batch``, every streamed piece
            for ragserve's engine (the EOS step, never streamed, is missing there).
        done: When the client had the whole answer (for a non-streaming baseline,
            when its batch returned).
        completion_tokens: Output tokens, EOS included.
        prompt_tokens: Prompt length.
    """

    rid: str
    arrival: float
    token_times: list[float] = field(default_factory=list)
    done: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0

    @property
    def ttft(self) -> float:
        """Seconds from arrival to the first output token."""
        return (self.token_times[0] if self.token_times else self.done) - self.arrival

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive output tokens."""
        times = self.token_times
        return [b - a for a, b in itertools.pairwise(times)]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) with linear interpolation, as ``numpy.percentile`` does.

    Returns NaN for no values.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    return {f"p{round(q * 100)}": round(percentile(values, q), 4) for q in QUANTILES}


def summarise(records: Sequence[Record]) -> dict[str, object]:
    """Throughput and latency figures of one system at one load point.

    The wall time runs from the first arrival to the last answer, so a system that
    idles between open-loop arrivals is not charged for the idle start.
    """
    if not records:
        raise ValueError("no records")
    start = min(r.arrival for r in records)
    wall = max(r.done for r in records) - start
    tokens = sum(r.completion_tokens for r in records)
    tpots = [
        (r.token_times[-1] - r.token_times[0]) / (len(r.token_times) - 1)
        for r in records
        if len(r.token_times) > 1
    ]
    return {
        "requests": len(records),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(tokens / wall, 3),
        "requests_per_s": round(len(records) / wall, 4),
        "ttft_s": _quantiles([r.ttft for r in records]),
        "itl_s": _quantiles([g for r in records for g in r.gaps]),
        "tpot_s": _quantiles(tpots),
        "latency_s": _quantiles([r.done - r.arrival for r in records]),
    }


def ratios(engine: Mapping[str, object], baseline: Mapping[str, object]) -> dict[str, float]:
    """Engine over baseline: above 1 is better for throughput, below 1 for latencies."""

    def get(summary: Mapping[str, object], key: str, sub: str | None = None) -> float:
        value = summary[key]
        if sub is not None:
            assert isinstance(value, Mapping)
            value = value[sub]
        assert isinstance(value, int | float)
        return float(value)

    def div(a: float, b: float) -> float:
        return round(a / b, 3) if b > 0 and not math.isnan(a) and not math.isnan(b) else math.nan

    out = {
        "output_tokens_per_s": div(
            get(engine, "output_tokens_per_s"), get(baseline, "output_tokens_per_s")
        ),
        "requests_per_s": div(get(engine, "requests_per_s"), get(baseline, "requests_per_s")),
    }
    for key in ("ttft_s", "itl_s"):
        for sub in ("p50", "p95"):
            out[f"{key[:-2]}_{sub}"] = div(get(engine, key, sub), get(baseline, key, sub))
    return out


def format_row(system: str, s: Mapping[str, object]) -> str:
    """One line of the console table (TTFT and latency in s, ITL in ms)."""

    def q(key: str, scale: float = 1.0, fmt: str = "6.2f") -> str:
        values = s[key]
        assert isinstance(values, Mapping)
        return "/".join(format(float(values[p]) * scale, fmt) for p in ("p50", "p95", "p99"))

    return (
        f"  {system:14s} {s['completion_tokens']:5d} {s['output_tokens_per_s']:7.1f} tok/s "
        f"{s['requests_per_s']:6.3f} req/s  "
        f"TTFT {q('ttft_s')}  ITL ms {q('itl_s', 1000, '5.0f')}  "
        f"latency {q('latency_s', fmt='5.1f')}"
    )


HEADER = (
    f"  {'system':14s} {'out':>5s} {'output':>13s} {'requests':>12s}  "
    "TTFT s p50/p95/p99       ITL ms p50/p95/p99  latency s p50/p95/p99"
)
