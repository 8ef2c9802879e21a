"""Batch jobs against online traffic, end to end in one ragserve process.

Online load: chat turns through the whole pipeline (streamed tokens; retrieval off,
so the engine is what is shared), a closed loop of ``--online-concurrency``
clients, each turn ``max_tokens`` 32. Bulk load: ``--lines`` chat requests of the
same shape.

- ``online alone``: the online load on an idle server.
- ``online + batch job``: the same while the bulk load runs as a batch job
  (``BatchService``/``BatchRunner``: the engine's batch class, fair slots).
- ``online + bulk as online`` (the baseline a user without batch jobs has): the
  same while the bulk load is sent as ordinary online turns, as many at once as
  the batch job runs lines (``RAGSERVE_BATCH_CONCURRENCY``).
- ``batch alone``: the batch job on an otherwise idle server: its own throughput.

Reports online TTFT p50/p95 and output tokens/s per scenario, the ratios against
``online alone``, and the bulk load's completed lines and tokens/s.

    python -m bench.batches [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.chat.events import TurnFinished
from app.chat.turn import TurnOptions, TurnRequest
from app.core.errors import ApiError
from app.entrypoints.openai.batches.protocol import BatchObject
from bench.machine import describe, machine
from bench.services import bench_services
from inference import Priority, TokenEvent

if TYPE_CHECKING:
    from litestar.datastructures import State

    from app.auth.principal import Principal
    from app.core.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 32
TOPICS = ["rivers", "owls", "bread", "tides", "glass", "maps", "bees", "clocks"]


def _question(n: int) -> str:
    return f"Write two sentences about {TOPICS[n % len(TOPICS)]} (item {n})."


async def _turn(services: State, tenant: str, n: int, priority: Priority) -> tuple[float, int]:
    """TTFT in seconds and generated tokens of one streamed turn."""
    options = TurnOptions(max_tokens=MAX_TOKENS, retrieval_k=0, temperature=0.0)
    request = TurnRequest(tenant, None, _question(n), options, priority=priority)
    start = time.perf_counter()
    ttft = None
    tokens = 0
    async for event in services.pipeline.run(request):
        if isinstance(event, TokenEvent) and ttft is None:
            ttft = time.perf_counter() - start
        if isinstance(event, TurnFinished):
            tokens = int(event.message.usage.get("completion_tokens") or 0)
    return (ttft if ttft is not None else time.perf_counter() - start), tokens


async def _online(services: State, tenant: str, turns: int, concurrency: int) -> dict[str, Any]:
    ttfts: list[float] = []
    tokens = 0
    counter = iter(range(turns))

    async def client() -> None:
        nonlocal tokens
        for n in counter:
            ttft, used = await _turn(services, tenant, 1000 + n, Priority.ONLINE)
            ttfts.append(ttft)
            tokens += used

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "turns": turns,
        "ttft_p50_ms": float(np.percentile(ttfts, 50) * 1000),
        "ttft_p95_ms": float(np.percentile(ttfts, 95) * 1000),
        "output_tokens_per_s": tokens / elapsed,
        "elapsed_s": elapsed,
    }


def _lines(count: int) -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"b-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": _question(n)}],
                    "max_tokens": MAX_TOKENS,
                    "temperature": 0.0,
                    "retrieval": {"enabled": False},
                },
            }
        )
        + "\n"
        for n in range(count)
    ).encode()


async def _start_batch(services: State, principal: Principal, lines: int) -> str:
    upload = await services.batches.upload(
        principal, filename="bulk.jsonl", purpose="batch", content=_lines(lines)
    )
    batch = await services.batches.create(
        principal,
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        window="24h",
        metadata=None,
    )
    return str(batch.id)


async def _batch_state(services: State, batch_id: str) -> BatchObject:
    return BatchObject.of(await services.batches.store.batch(None, batch_id))


async def _wait_batch(services: State, batch_id: str) -> BatchObject:
    while True:
        batch = await _batch_state(services, batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        await asyncio.sleep(0.2)


async def _cancel(services: State, principal: Principal, batch_id: str) -> BatchObject:
    """Cancel the batch unless it has ended already; its final state."""
    if (await _batch_state(services, batch_id)).status in ("validating", "in_progress"):
        with contextlib.suppress(ApiError):  # it may end meanwhile
            await services.batches.cancel(principal, batch_id)
    return await _wait_batch(services, batch_id)


async def run(quick: bool, online_concurrency: int, lines: int) -> dict[str, Any]:
    turns = 8 if quick else 32
    lines = 16 if quick else lines

    def configure(settings: Settings) -> None:
        settings.safety.enabled = False
        settings.rate_limit.enabled = False

    async with bench_services(configure) as services:
        tenant = (await services.tenants.ensure("bench-batches")).id
        created = await services.api_keys.create(tenant, scopes=("chat",))
        principal = await services.authenticator.authenticate(created.secret)
        concurrency = services.settings.batch.concurrency
        await _turn(services, tenant, 0, Priority.ONLINE)  # warm-up
        report: dict[str, Any] = {
            "machine": machine(),
            "settings": {
                "online_concurrency": online_concurrency,
                "online_turns": turns,
                "bulk_lines": lines,
                "batch_concurrency": concurrency,
                "max_tokens": MAX_TOKENS,
            },
        }
        alone = await _online(services, tenant, turns, online_concurrency)
        report["online_alone"] = alone

        batch_id = await _start_batch(services, principal, lines)
        await asyncio.sleep(1.5)  # a worker takes it within its 1 s poll
        with_batch = await _online(services, tenant, turns, online_concurrency)
        during = await _batch_state(services, batch_id)
        with_batch["bulk_lines_done_meanwhile"] = during.request_counts.completed
        report["online_with_batch_job"] = with_batch
        await _cancel(services, principal, batch_id)

        bulk_done = 0
        stop = asyncio.Event()

        async def bulk_client(offset: int) -> None:
            nonlocal bulk_done
            n = offset
            while not stop.is_set() and n < lines:
                await _turn(services, tenant, n, Priority.ONLINE)
                bulk_done += 1
                n += concurrency

        bulk = [asyncio.create_task(bulk_client(i)) for i in range(concurrency)]
        await asyncio.sleep(0.5)
        with_bulk = await _online(services, tenant, turns, online_concurrency)
        with_bulk["bulk_lines_done_meanwhile"] = bulk_done
        report["online_with_bulk_as_online"] = with_bulk
        stop.set()
        await asyncio.gather(*bulk)

        start = time.perf_counter()
        batch_id = await _start_batch(services, principal, lines)
        done = await _wait_batch(services, batch_id)
        elapsed = time.perf_counter() - start
        report["batch_alone"] = {
            "lines": lines,
            "completed": done.request_counts.completed,
            "lines_per_s": done.request_counts.completed / elapsed,
            "output_tokens_per_s": done.usage.output_tokens / elapsed,
            "elapsed_s": elapsed,
        }
        for name in ("online_with_batch_job", "online_with_bulk_as_online"):
            report[name]["ttft_p95_vs_alone"] = report[name]["ttft_p95_ms"] / alone["ttft_p95_ms"]
            report[name]["tokens_per_s_vs_alone"] = (
                report[name]["output_tokens_per_s"] / alone["output_tokens_per_s"]
            )
    return report


def print_report(report: dict[str, Any]) -> None:
    print(describe(report["machine"]))
    print(json.dumps(report["settings"]))
    header = ("TTFT p50", "TTFT p95", "tok/s", "p95 x", "bulk done")
    print(f"{'online load':32} " + " ".join(f"{h:>9}" for h in header))
    for name in ("online_alone", "online_with_batch_job", "online_with_bulk_as_online"):
        row = report[name]
        print(
            f"{name:32} {row['ttft_p50_ms']:9.0f} {row['ttft_p95_ms']:9.0f} "
            f"{row['output_tokens_per_s']:7.1f} {row.get('ttft_p95_vs_alone', 1.0):6.2f} "
            f"{row.get('bulk_lines_done_meanwhile', '-'):>9}"
        )
    alone = report["batch_alone"]
    print(
        f"batch alone: {alone['completed']}/{alone['lines']} lines in {alone['elapsed_s']:.1f} s, "
        f"{alone['lines_per_s']:.2f} lines/s, {alone['output_tokens_per_s']:.1f} output tokens/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 online turns, 16 bulk lines")
    parser.add_argument("--online-concurrency", type=int, default=4)
    parser.add_argument("--lines", type=int, default=200, help="bulk lines (full run)")
    args = parser.parse_args()
    report = asyncio.run(run(args.quick, args.online_concurrency, args.lines))
    print_report(report)
    RESULTS.mkdir(exist_ok=True)
    name = "batches_quick.json" if args.quick else "batches.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(f"wrote bench/results/{name}")


if __name__ == "__main__":
    main()
