"""Batch jobs beside online traffic: what the engine's priority classes buy online requests.

One process, one model and dtype, the batching engine, the RAG-shaped requests of
the generation benchmark (``bench/generation_workload.py``: real chunks of the
Python reference as numbered sources, greedy decoding). Two workloads: an *online
stream*, closed loop at concurrency C (each client sends its next request when
it has the previous answer), and a *batch*: N requests submitted at once, as an
OpenAI-style batch job hands its lines to the engine. Online requests come from
tenant ``online``, batch ones from tenant ``batch-job``, so the scheduler's
per-tenant round-robin is at work in every phase. Four phases, each on a fresh
engine (an empty prefix cache) warmed up on other prompts:

- ``online-alone``: the online stream on an idle engine.
- ``online+batch``: the batch is submitted as ``Priority.BATCH``; once it holds
  its share of the slots, the online stream starts.
- ``online+batch-as-online``: the same, with the batch submitted as ``ONLINE``,
  as it would run without priority classes (the baseline).
- ``batch-alone``: the batch as ``BATCH`` on an otherwise idle engine.

Figures per phase: the online stream's TTFT and inter-token latency p50/p95/p99
and output tokens/s (first arrival to last answer), the batch's output tokens/s
and wall time, and the engine's preemptions; then the ratios of each loaded phase
to ``online-alone`` and of the batch under online load to ``batch-alone``.

Run ``python -m bench.batch_priority [--quick]``; JSON goes to
``bench/results/batch_priority.json`` (``batch_priority-quick.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from prometheus_client import CollectorRegistry

from bench.generation import REPO, LoadPoint, drive, environment, warm_up
from bench.generation_stats import HEADER, Record, format_row, summarise
from bench.generation_systems import EngineServer
from bench.generation_workload import BenchRequest, build_requests, load_corpus
from bench.machine import describe, machine
from inference import Priority
from inference.batching_engine import BatchingEngine
from inference.engine_support import render_chat
from inference.loader import LoadedModel, load_model

if TYPE_CHECKING:
    from collections.abc import Sequence

    from inference import ChatMessage

PHASES = ("online-alone", "online+batch", "online+batch-as-online", "batch-alone")


@dataclass(frozen=True, slots=True)
class Workload:
    """The requests of a run: warm-up, the online stream and the batch."""

    warm: list[BenchRequest]
    online: list[BenchRequest]
    batch: list[BenchRequest]
    concurrency: int


@dataclass(slots=True)
class PhaseResult:
    """One phase's records (either list may be empty), the batch's wall time from its
    submission, and the engine's preemptions."""

    online: list[Record]
    batch: list[Record]
    batch_wall_s: float
    preemptions: float


def make_engine(
    loaded: LoadedModel, args: argparse.Namespace
) -> tuple[BatchingEngine, CollectorRegistry]:
    """A fresh engine (empty prefix cache) with room for the whole batch to wait."""
    registry = CollectorRegistry()
    engine = BatchingEngine(
        lambda: loaded,
        max_running=args.max_running,
        max_batch_share=args.batch_share,
        max_waiting=4096,
        max_waiting_tokens=1 << 24,
        registry=registry,
    )
    return engine, registry


async def run_phase(
    name: str, loaded: LoadedModel, work: Workload, args: argparse.Namespace
) -> PhaseResult:
    """Run one phase on a fresh engine; see the module docstring."""
    engine, registry = make_engine(loaded, args)
    online = EngineServer("online", engine, Priority.ONLINE, tenant="online")
    batch_class = Priority.ONLINE if name == "online+batch-as-online" else Priority.BATCH
    batch = EngineServer("batch", engine, batch_class, tenant="batch-job")
    await online.start()
    try:
        await warm_up(online, work.warm)
        batch_records: list[Record] = []
        online_records: list[Record] = []
        start = time.perf_counter()
        if name == "online-alone":
            online_records = await _online(online, work, args.seed)
        else:
            burst = LoadPoint("batch", len(work.batch), concurrency=len(work.batch))
            submitted = asyncio.create_task(drive(batch, burst, work.batch, args.seed))
            if name != "batch-alone":
                # The batch takes the slots its class may hold before the stream starts.
                slots = engine.max_batch_running if batch_class is Priority.BATCH else None
                await _until_running(engine, min(len(work.batch), slots or args.max_running))
                online_records = await _online(online, work, args.seed)
            batch_records = await submitted
        wall = max((r.done for r in batch_records), default=start) - start
        labels = {"model_name": engine.model_name}
        preemptions = registry.get_sample_value("ragserve:num_preemptions_total", labels) or 0.0
        return PhaseResult(online_records, batch_records, round(wall, 3), preemptions)
    finally:
        await online.stop()


async def _online(server: EngineServer, work: Workload, seed: int) -> list[Record]:
    point = LoadPoint("online", len(work.online), concurrency=work.concurrency)
    return await drive(server, point, work.online, seed)


async def _until_running(engine: BatchingEngine, count: int, within: float = 120.0) -> None:
    """Wait until ``count`` sequences run (or ``within`` seconds have passed)."""
    deadline = time.monotonic() + within
    # NOTE: polled: the engine's worker thread signals no asyncio event.
    while engine.num_running < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def build_workload(loaded: LoadedModel, args: argparse.Namespace) -> Workload:
    """Seeded online and batch requests; the batch's answers are longer (summaries)."""
    tokenizer = loaded.tokenizer

    def render(messages: Sequence[ChatMessage]) -> list[int]:
        return render_chat(tokenizer, messages)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    corpus = load_corpus(count)
    prompts = (200, 450) if args.quick else (200, 800)
    online_new = (16, 48) if args.quick else (16, 96)
    batch_new = (32, 64) if args.quick else (32, 160)
    seed = args.seed
    return Workload(
        warm=build_requests(corpus, render, 3, seed - 1, "warm", (8, 8), prompts),
        online=build_requests(corpus, render, args.online, seed, "online", online_new, prompts),
        batch=build_requests(corpus, render, args.batch, seed + 1, "batch", batch_new, prompts),
        concurrency=args.concurrency,
    )


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b > 0 else float("nan")


def _online_ratios(loaded: dict[str, Any], alone: dict[str, Any]) -> dict[str, float]:
    """A loaded phase's online figures over ``online-alone``'s (above 1: worse latency)."""
    return {
        "ttft_p50": _ratio(loaded["ttft_s"]["p50"], alone["ttft_s"]["p50"]),
        "ttft_p95": _ratio(loaded["ttft_s"]["p95"], alone["ttft_s"]["p95"]),
        "itl_p95": _ratio(loaded["itl_s"]["p95"], alone["itl_s"]["p95"]),
        "output_tokens_per_s": _ratio(loaded["output_tokens_per_s"], alone["output_tokens_per_s"]),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    loaded = load_model(None, REPO / ".cache" / "models", dtype=args.dtype)
    work = build_workload(loaded, args)
    print(describe())
    print(
        f"model {loaded.name}, dtype {loaded.dtype}, {torch.get_num_threads()} torch threads; "
        f"max_running {args.max_running}, batch share {args.batch_share}; online "
        f"{len(work.online)} requests at concurrency {work.concurrency}; batch "
        f"{len(work.batch)} requests ({sum(r.max_tokens for r in work.batch)} max tokens)"
    )
    phases: dict[str, dict[str, object]] = {}
    load_before = os.getloadavg()
    print(HEADER)
    for name in PHASES:
        result = await run_phase(name, loaded, work, args)
        phase: dict[str, object] = {"preemptions": result.preemptions}
        if result.online:
            online = summarise(result.online)
            phase["online"] = online
            print(format_row(name, online), flush=True)
        if result.batch:
            summary = summarise(result.batch)
            tokens = int(summary["completion_tokens"])  # type: ignore[call-overload]
            summary["wall_s"] = result.batch_wall_s
            summary["output_tokens_per_s"] = round(tokens / result.batch_wall_s, 3)
            phase["batch"] = summary
            print(
                f"  {name}: batch {tokens} tokens in {result.batch_wall_s:.1f}s = "
                f"{summary['output_tokens_per_s']:.1f} tok/s, "
                f"{result.preemptions:.0f} preemptions",
                flush=True,
            )
        phases[name] = phase
    load_after = os.getloadavg()
    # NOTE: on a small machine another busy process skews every figure; the load
    # averages tell a reader whether the run had the CPUs to itself.
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    ratios = _ratios(phases)
    for key, values in ratios.items():
        print(f"  {key:34s} " + "  ".join(f"{k} {v:.2f}" for k, v in values.items()))
    return {
        "benchmark": "batch_priority",
        "quick": args.quick,
        "environment": environment(loaded, "BatchingEngine"),
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": load_after},
        "config": {
            "max_running": args.max_running,
            "max_batch_share": args.batch_share,
            "online_requests": len(work.online),
            "online_concurrency": work.concurrency,
            "batch_requests": len(work.batch),
            "seed": args.seed,
        },
        "phases": phases,
        "ratios": ratios,
    }


def _ratios(phases: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    alone = phases["online-alone"]["online"]
    with_batch = phases["online+batch"]["online"]
    as_online = phases["online+batch-as-online"]["online"]
    batch_alone = phases["batch-alone"]["batch"]["output_tokens_per_s"]
    return {
        "online+batch / online-alone": _online_ratios(with_batch, alone),
        "online+batch-as-online / online-alone": _online_ratios(as_online, alone),
        "online+batch / online+batch-as-online": _online_ratios(with_batch, as_online),
        "batch tok/s over batch-alone": {
            "online+batch": _ratio(
                phases["online+batch"]["batch"]["output_tokens_per_s"], batch_alone
            ),
            "online+batch-as-online": _ratio(
                phases["online+batch-as-online"]["batch"]["output_tokens_per_s"], batch_alone
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small run (about 3 min on 2 cores)")
    parser.add_argument(
        "--dtype", default="auto", help="auto (what ragserve picks), float32, bfloat16"
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--online", type=int, default=None, help="online requests (24; quick 8)")
    parser.add_argument("--concurrency", type=int, default=None, help="online clients (4; quick 2)")
    parser.add_argument("--batch", type=int, default=None, help="batch requests (64; quick 16)")
    parser.add_argument("--max-running", type=int, default=None, help="max_running (16; quick 8)")
    parser.add_argument("--batch-share", type=float, default=0.5, help="max_batch_share")
    args = parser.parse_args()
    defaults = {"online": (24, 8), "concurrency": (4, 2), "batch": (64, 16), "max_running": (16, 8)}
    for key, (full, quick) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    summary = asyncio.run(run(args))
    name = "batch_priority-quick.json" if args.quick else "batch_priority.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
