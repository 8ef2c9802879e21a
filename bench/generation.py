"""Generation throughput and latency: ragserve's engine against three Hugging Face baselines.

One run, one process, one model and dtype, the same seeded RAG-shaped requests for
every system (``bench/generation_workload.py``: real chunks of the Python reference,
prompts of 200-1,000 tokens, ``max_tokens`` drawn from 16-256, greedy decoding, no
repetition penalty, EOS honoured). Systems (``bench/generation_systems.py``):

- ``naive``: one ``generate`` per request, oldest first (a Flask-style wrapper).
- ``hf-static``: ``generate`` over the requests waiting when the server is free,
  up to 32, left-padded; a batch runs to its end before the next one forms.
- ``hf-continuous``: transformers' continuous batching (the manager behind
  ``model.generate_batch``). ``generate_batch`` itself takes a fixed list of prompts
  and one ``max_new_tokens`` for all of them, so it can be neither fed by arriving
  clients nor given per-request budgets; the benchmark drives its manager
  (``add_request`` per request) instead, with transformers' own per-token timestamps.
- ``ragserve``: ``inference.batching_engine.BatchingEngine`` through the ``Engine``
  API, streaming (``LocalEngine``, one request at a time, with a warning, until
  the batching engine exists).

Load points. Closed loop at concurrency C: C clients, each sends its next request
as soon as it has the previous answer, until the point's requests are used up; the
servers see exactly what they would see from C HTTP clients (the naive server
queues them, the static server batches those waiting when it becomes free).
Open loop: requests arrive at seeded Poisson times whatever the answers; latency
is counted from the scheduled arrival, so queueing shows.

Figures per system and point: output tokens/s and requests/s (first arrival to
last answer), time to first token (TTFT), inter-token latency (ITL: gaps between
decode steps for the baselines, between streamed pieces for the engine), time per
output token and whole-request latency, p50/p95/p99, then the engine's ratios to
each baseline. TTFT of the non-streaming baselines is when their first token was
computed (a ``LogitsProcessor`` clocks every step), not when a client could see
it: a client sees nothing before its batch returns (``latency``). Finally every
prompt of the largest closed-loop point is prefilled alone on a fresh, idle engine
to tell whether the engine's TTFT p95 there stays within 3x of that.

Run ``python -m bench.generation [--quick]``; JSON goes to
``bench/results/generation.json`` (``generation-quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers

from bench.generation_stats import HEADER, Record, format_row, percentile, ratios, summarise
from bench.generation_systems import CBServer, EngineServer, HFServer, System
from bench.generation_workload import BenchRequest, build_requests, load_corpus, poisson_offsets
from bench.machine import describe, machine
from inference import Engine, LocalEngine
from inference.loader import LoadedModel, load_model
from kernel.cpu import cpu_model

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parents[1]
CB_PAGE = 256


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """``count`` requests, closed loop at ``concurrency`` or open loop at ``rate``/s."""

    name: str
    count: int
    concurrency: int = 0
    rate: float = 0.0


def load_points(quick: bool, rates: Sequence[float], scale: float) -> list[LoadPoint]:
    """The run's load points; ``scale`` multiplies the full mode's request counts.

    NOTE: with as many requests as clients (c64 by default) every client sends one
    request: a burst, the first round of a closed loop.
    """
    if quick:
        closed = [LoadPoint("c1", 2, concurrency=1), LoadPoint("c8", 8, concurrency=8)]
        return [*closed, *(LoadPoint(f"poisson-{r:g}", 3, rate=r) for r in rates)]
    counts = {1: 4, 8: 16, 32: 48, 64: 64}
    closed = [
        LoadPoint(f"c{c}", max(c, round(n * scale)), concurrency=c) for c, n in counts.items()
    ]
    opened = [LoadPoint(f"poisson-{r:g}", max(2, round(20 * scale)), rate=r) for r in rates]
    return [*closed, *opened]


async def drive(
    system: System, point: LoadPoint, requests: list[BenchRequest], seed: int
) -> list[Record]:
    """Send ``requests`` to ``system`` as ``point`` says; one record per request."""
    if point.concurrency:
        pending = iter(requests)
        records: list[Record] = []

        async def client() -> None:
            for request in pending:
                records.append(await system.serve(request, time.perf_counter()))

        await asyncio.gather(*(client() for _ in range(min(point.concurrency, len(requests)))))
        return records
    offsets = poisson_offsets(len(requests), point.rate, seed)
    start = time.perf_counter()

    async def arrive(request: BenchRequest, offset: float) -> Record:
        await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
        return await system.serve(request, start + offset)

    return list(
        await asyncio.gather(*(arrive(r, o) for r, o in zip(requests, offsets, strict=True)))
    )


def make_engine(loaded: LoadedModel, max_running: int | None) -> tuple[Engine, str]:
    """ragserve's batching engine over ``loaded``, or ``LocalEngine`` while it is missing."""
    try:
        from inference.batching_engine import BatchingEngine
    except ImportError:
        print(
            "WARNING: inference.batching_engine is missing: "
            "'ragserve' is LocalEngine, one request at a time"
        )
        return LocalEngine(lambda: loaded, max_waiting=4096), "LocalEngine"
    accepted = inspect.signature(BatchingEngine).parameters
    wanted: dict[str, Any] = {"max_waiting": 4096, "max_running": max_running}
    kwargs = {k: v for k, v in wanted.items() if k in accepted and v is not None}
    return BatchingEngine(lambda: loaded, **kwargs), "BatchingEngine"


def eos_ids(loaded: LoadedModel) -> list[int]:
    """Every EOS id of the tokenizer and the generation config, as the engine uses."""
    ids: set[int] = set()
    for source in (loaded.tokenizer.eos_token_id, loaded.model.generation_config.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source is not None:
            ids.update(int(i) for i in source)
    return sorted(ids)


def environment(loaded: LoadedModel, engine_class: str) -> dict[str, object]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return ""

    return {
        "model": f"{loaded.name} ({loaded.version})",
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "engine": engine_class,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
    }


async def alone_ttft(
    loaded: LoadedModel, warm: list[BenchRequest], requests: list[BenchRequest]
) -> list[float]:
    """TTFT of each prompt prefilled alone on a fresh engine (its own, empty prefix cache).

    NOTE: a fresh engine's first requests run several times slower (allocation,
    kernel warm-up), so it serves ``warm`` (other prompts) first.
    """
    engine, _ = make_engine(loaded, None)
    server = EngineServer("alone", engine)
    await server.start()
    try:
        await warm_up(server, warm)
        out = []
        for r in requests:
            alone = BenchRequest(f"alone-{r.rid}", r.prompt_ids, 1)
            out.append((await server.serve(alone, time.perf_counter())).ttft)
        return out
    finally:
        await server.stop()


async def warm_up(system: System, warm: list[BenchRequest]) -> None:
    """Serve ``warm`` one by one, then all at once, so no measured point pays start-up costs."""
    for r in warm:
        await system.serve(
            BenchRequest(f"{r.rid}-{system.name}-a", r.prompt_ids, 8), time.perf_counter()
        )
    await asyncio.gather(
        *(
            system.serve(
                BenchRequest(f"{r.rid}-{system.name}-b", r.prompt_ids, 8), time.perf_counter()
            )
            for r in warm
        )
    )


async def run(args: argparse.Namespace) -> dict[str, object]:
    quick: bool = args.quick
    max_new = (16, 48) if quick else (16, 256)
    prompt_range = (200, 450) if quick else (200, 1000)
    default_rates = [2.0] if quick else [0.2, 0.6]
    rates = [float(r) for r in args.rates.split(",")] if args.rates else default_rates
    points = load_points(quick, rates, args.scale)
    if args.points:
        wanted = set(args.points.split(","))
        points = [p for p in points if p.name in wanted]
    loaded = load_model(None, REPO / ".cache" / "models", dtype=args.dtype)
    eos = eos_ids(loaded)
    engine, engine_class = make_engine(loaded, args.max_running)
    ours = EngineServer("ragserve", engine)
    await ours.start()
    corpus = load_corpus(engine.count_tokens)
    workloads = {
        p.name: build_requests(
            corpus, engine.render_chat, p.count, args.seed + i, p.name, max_new, prompt_range
        )
        for i, p in enumerate(points)
    }
    warm = build_requests(
        corpus, engine.render_chat, 3, args.seed - 1, "warm", (8, 8), prompt_range
    )
    top = max(p.concurrency for p in points)
    blocks = math.ceil(top * (prompt_range[1] + max_new[1]) / CB_PAGE) + top
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    cb_config = ContinuousBatchingConfig(num_blocks=blocks, max_batch_tokens=1024)
    systems: list[System] = [
        HFServer("naive", loaded.model, eos, max_batch=1),
        HFServer("hf-static", loaded.model, eos, max_batch=32),
        CBServer(loaded.model, eos, cb_config),
        ours,
    ]
    systems = [s for s in systems if not args.systems or s.name in args.systems.split(",")]
    print(describe())
    print(
        f"{len(corpus)} passages; engine {engine_class}; dtype {loaded.dtype}; "
        f"{torch.get_num_threads()} torch threads; points {[p.name for p in points]}"
    )
    results: dict[str, dict[str, object]] = {}
    try:
        for system in systems:
            if system is not ours:
                await system.start()
            await warm_up(system, warm)
        for i, point in enumerate(points):
            requests = workloads[point.name]
            lengths = [len(r.prompt_ids) for r in requests]
            print(
                f"\n{point.name}: {len(requests)} requests, prompts {min(lengths)}-{max(lengths)} "
                f"tokens, max_tokens {sum(r.max_tokens for r in requests)} in all"
            )
            print(HEADER)
            summaries: dict[str, dict[str, object]] = {}
            for system in systems:
                records = await drive(system, point, requests, args.seed + 1000 + i)
                summaries[system.name] = summarise(records)
                print(format_row(system.name, summaries[system.name]), flush=True)
            point_result: dict[str, object] = {"load": _point_dict(point), "systems": summaries}
            if ours.name in summaries:
                over = {
                    name: ratios(summaries[ours.name], s)
                    for name, s in summaries.items()
                    if name != ours.name
                }
                point_result["ragserve_over"] = over
                for name, r in over.items():
                    print(
                        f"  ragserve / {name:13s} "
                        + "  ".join(f"{k} {v:.2f}" for k, v in r.items())
                    )
            results[point.name] = point_result
    finally:
        for system in systems:
            await system.stop()
    check = await _alone_check(loaded, points, warm, workloads, results)
    return {
        "benchmark": "generation",
        "quick": quick,
        "environment": environment(loaded, engine_class),
        "machine": machine(),
        "workload": {
            "max_tokens": list(max_new),
            "prompt_tokens": list(prompt_range),
            "seed": args.seed,
            "corpus": "pydoc_data.topics",
            "passages": len(corpus),
        },
        "points": results,
        "ttft_vs_alone": check,
    }


def _point_dict(point: LoadPoint) -> dict[str, object]:
    if point.concurrency:
        return {"kind": "closed", "concurrency": point.concurrency, "requests": point.count}
    return {"kind": "open-poisson", "rate_per_s": point.rate, "requests": point.count}


async def _alone_check(
    loaded: LoadedModel,
    points: list[LoadPoint],
    warm: list[BenchRequest],
    workloads: dict[str, list[BenchRequest]],
    results: dict[str, dict[str, object]],
) -> dict[str, object]:
    ref = max((p for p in points if p.concurrency), key=lambda p: p.concurrency)
    alone = await alone_ttft(loaded, warm, workloads[ref.name])
    systems = results[ref.name]["systems"]
    assert isinstance(systems, dict)
    out: dict[str, object] = {
        "point": ref.name,
        "alone_ttft_s": {f"p{q}": round(percentile(alone, q / 100), 4) for q in (50, 95, 99)},
    }
    if "ragserve" in systems:
        loaded_p95 = float(systems["ragserve"]["ttft_s"]["p95"])
        alone_p95 = percentile(alone, 0.95)
        out["ragserve_ttft_p95_s"] = loaded_p95
        out["ratio_p95"] = round(loaded_p95 / alone_p95, 3)
        out["within_3x"] = loaded_p95 <= 3 * alone_p95
        print(
            f"\nTTFT alone (fresh idle engine, {ref.name} prompts): "
            f"p50 {percentile(alone, 0.5):.3f}s "
            f"p95 {alone_p95:.3f}s; ragserve TTFT p95 at {ref.name}: {loaded_p95:.3f}s "
            f"= {loaded_p95 / alone_p95:.2f}x alone ({'within' if out['within_3x'] else 'over'} 3x)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="few requests, c1/c8, short outputs (<3 min)"
    )
    parser.add_argument(
        "--dtype", default="auto", help="auto (what ragserve picks), float32, bfloat16"
    )
    parser.add_argument(
        "--rates", default="", help="open-loop Poisson rates per second, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply full-mode request counts"
    )
    parser.add_argument("--points", default="", help="only these load points, e.g. c32,poisson-0.6")
    parser.add_argument(
        "--systems", default="", help="subset: naive,hf-static,hf-continuous,ragserve"
    )
    parser.add_argument("--max-running", type=int, default=None, help="BatchingEngine max_running")
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    out = (
        REPO / "bench" / "results" / ("generation-quick.json" if args.quick else "generation.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
