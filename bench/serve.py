"""End-to-end serving: ragserve against llama.cpp's ``llama-server`` and a naive
FastAPI wrapper around ``generate``, one server at a time, on the same load.

The load (``bench/serve_load.py``): the official OpenAI client streaming ~450-token
prompts of real documentation plus a real question, ``max_tokens`` 64, greedy
(``--temperature`` samples instead, the OpenAI points only);
closed-loop concurrency points and open-loop Poisson rates up to saturation
(``vllm bench serve``'s two modes), and multi-turn conversations whose follow-ups
carry the conversation so far; for ragserve also the same conversations over its
WebSocket protocol, the follow-ups reusing the stored conversation.

The servers, each alone on the machine while it is measured:

- **ragserve**: ``ragserve serve`` with its embedded engine at its defaults
  (``RAGSERVE_GENERATION_DTYPE=auto``: bf16 where the CPU has it), retrieval off in
  each request (``"retrieval": {"enabled": false}``) so every server sees the same
  prompt, safety and rate limits off, repetition penalty 1.0. Its prompt has its
  own short system line besides the user message (``prompt_tokens_mean`` says).
- **llama.cpp**: ``llama-server`` built from the sources in the llama-cpp-python
  sdist (``bench/llama_cpp.py``), 32 slots, 2 threads, ``--jinja`` (the model's own
  chat template), serving ``SmolLM2-135M-Instruct.Q4_1.gguf``: the file ragserve's
  weights are dequantized from.
- **naive**: ``bench/naive_server.py``, FastAPI calling ``generate`` per request.

Goodput counts requests with TTFT <= 2 s and TPOT <= 100 ms. On the multi-turn
points ragserve also reports its prefix cache's hit rate (prompt tokens served from
cached KV over prompt tokens looked up, from its ``/metrics``). JSON and a PNG plot
(output tokens/s against TTFT p95, per server) go to ``bench/results/``; the last
lines printed are ragserve's ratios to each peer.

    python -m bench.serve [--quick] [--servers ragserve,llama.cpp,naive]
        [--concurrency 1,32] [--multi-turn] [--temperature 0.7] [--env RAGSERVE_...=value]

``--quick`` (two concurrency points, few requests) takes under 5 minutes once
llama-server is built (the first build takes about 12 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
from tokenizers import Tokenizer

from bench.llama_cpp import ensure_server
from bench.machine import describe, machine
from bench.serve_load import (
    FOLLOW_UPS,
    SLO_TPOT_S,
    SLO_TTFT_S,
    Sample,
    closed_loop,
    open_loop,
    prompts,
    row,
    stream_openai,
    stream_ws,
    summarise,
)
from bench.serve_plot import plot
from inference.loader import packaged_gguf_path

# NOTE: the end-to-end tests' process helper starts, probes and stops ragserve.
from tests.e2e.server import Server
from tests.support.processes import free_port, stop_process, wait_until_ready

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 64
SLOTS = 32
SATURATED_TTFT_S = 10.0
"""A Poisson point whose TTFT p90 passes this is past saturation: the sweep stops."""


@dataclass
class Peer:
    """A server under test: how to start it and talk to it."""

    name: str
    url: str = ""
    key: str = "none"
    extra: dict[str, Any] | None = None
    process: subprocess.Popen[bytes] | None = None
    server: Server | None = None
    ws_url: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    temperature: float = 0.0
    """Of every OpenAI request (0: greedy)."""

    def client(self) -> openai.AsyncOpenAI:
        # NOTE: a new connection per request, for every server alike: with keep-alive,
        # llama-server now and then closed a pooled connection just as the client
        # reused it ("APIConnectionError", 1-2 requests a run, even at c=1), and a
        # failed request counts no tokens. No retries either: they would add their
        # back-off to the TTFT.
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=self.key, max_retries=0, timeout=600,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx.Limits(max_keepalive_connections=0)
            ),
        )  # fmt: skip

    def prefix_counters(self) -> tuple[float, float] | None:
        """ragserve's prefix-cache (hits, queries) in prompt tokens so far; ``None``
        for a peer without them."""
        if self.server is None:
            return None
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = dict.fromkeys(("hits", "queries"), 0.0)
        for line in text.splitlines():
            for name in found:
                if line.startswith(f"ragserve:prefix_cache_{name}_total{{"):
                    found[name] += float(line.rsplit(" ", 1)[1])
        return found["hits"], found["queries"]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.process is not None:
            stop_process(self.process)


def _started(name: str, command: list[str], log: Path) -> Peer:
    """A peer process on a free port (``{port}`` in ``command``), once ``/health`` answers."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in command]
    process = subprocess.Popen(argv, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    peer = Peer(name, url=f"http://127.0.0.1:{port}", process=process)
    wait_until_ready(
        process, f"{peer.url}/health", name, lambda: log.read_text()[-3000:], timeout=300
    )
    return peer


def start_ragserve(root: Path, env: dict[str, str]) -> Peer:
    server = Server(
        root,
        {
            "RAGSERVE_SAFETY_ENABLED": "false",
            "RAGSERVE_RATE_LIMIT_ENABLED": "false",
            "RAGSERVE_GENERATION_MAX_TOKENS": str(MAX_TOKENS),
            "RAGSERVE_GENERATION_REPETITION_PENALTY": "1.0",
            **env,
        },
    )
    server.cli("migrate")
    key = server.create_key("bench", scopes=("chat",))
    server.start()
    return Peer(
        "ragserve",
        url=server.url,
        key=key,
        extra={"retrieval": {"enabled": False}},
        server=server,
        ws_url=server.ws_url,
    )


def start_llama_cpp(root: Path) -> Peer:
    command = [
        str(ensure_server()),
        "-m", str(packaged_gguf_path()),
        "--host", "127.0.0.1", "--port", "{port}",
        "-t", "2", "-tb", "2", "-np", str(SLOTS), "-c", str(SLOTS * 1024),
        "--jinja", "--no-webui",
    ]  # fmt: skip
    peer = _started("llama.cpp", command, root / "llama-server.log")
    peer.info = {"command": " ".join(command[1:])}
    return peer


def start_naive(root: Path, dtype: str) -> Peer:
    command = [sys.executable, "-m", "bench.naive_server", "--port", "{port}", "--dtype", dtype]
    peer = _started("naive", command, root / "naive.log")
    peer.info = {"dtype": dtype}
    return peer


def _sender(peer: Peer) -> Callable[[list[dict[str, str]]], Awaitable[Sample]]:
    client = peer.client()

    def send(messages: list[dict[str, str]]) -> Awaitable[Sample]:
        return stream_openai(client, MODEL, messages, MAX_TOKENS, peer.extra, peer.temperature)

    return send


async def measure(
    peer: Peer,
    questions: list[str],
    quick: bool,
    concurrency: list[int] | None,
    multi_turn: bool = False,
) -> dict[str, Any]:
    """Every load point against one server."""
    send = _sender(peer)
    stream = iter(questions)

    def take(count: int) -> list[str]:
        return [next(stream) for _ in range(count)]

    await closed_loop(send, take(2), 1)  # warm-up
    points: dict[str, Any] = {}
    levels = [] if multi_turn else concurrency or ([1, 8] if quick else [1, 8, 32])
    for level in levels:
        count = max(3 if quick else 6, 2 * level) if level < 32 else 64
        samples = await closed_loop(send, take(count), level)
        points[f"c={level}"] = summarise(samples)
        print(row(peer.name, f"c={level}", points[f"c={level}"]), flush=True)
    if not quick and concurrency is None and not multi_turn:
        for rate in (0.5, 1.0, 2.0, 4.0):
            summary = summarise(await open_loop(send, take(32), rate))
            points[f"rate={rate}"] = summary
            print(row(peer.name, f"rate={rate}/s", summary), flush=True)
            if (
                summary.get("errors")
                or summary.get("ttft_s", {}).get("p90", 1e9) > SATURATED_TTFT_S
            ):
                break  # saturated: requests queue; a higher rate only queues longer
    if (not quick and concurrency is None) or multi_turn:
        before = peer.prefix_counters()
        multi = await closed_loop(send, take(8), 8, turns=3)
        points["multi-turn c=8"] = summarise(multi) | _prefix_hits(peer, before)
        print(row(peer.name, "3-turn c=8", points["multi-turn c=8"]), flush=True)
        if peer.ws_url is not None:
            before = peer.prefix_counters()
            conversations = [[q, *FOLLOW_UPS] for q in take(8)]
            results = await asyncio.gather(
                *(stream_ws(peer.ws_url, peer.key, c, MAX_TOKENS) for c in conversations)
            )
            summary = summarise([s for r in results for s in r]) | _prefix_hits(peer, before)
            points["ws 3-turn c=8"] = summary
            print(row(peer.name, "ws 3-turn", points["ws 3-turn c=8"]), flush=True)
    return points


def _prefix_hits(peer: Peer, before: tuple[float, float] | None) -> dict[str, Any]:
    """The share of prompt tokens the prefix cache served since ``before``."""
    after = peer.prefix_counters()
    if before is None or after is None:
        return {}
    hits, queries = after[0] - before[0], after[1] - before[1]
    rate = round(hits / queries, 3) if queries else 0.0
    print(f"{peer.name}: prefix cache served {hits:.0f} of {queries:.0f} prompt tokens ({rate})")
    return {"prefix_cache_hit_rate": rate, "prefix_cache_hit_tokens": hits}


def ratios(results: dict[str, dict[str, Any]]) -> list[str]:
    """ragserve's output tokens/s and TTFT p50 against each peer, per closed-loop point."""
    ours = results.get("ragserve", {})
    lines = []
    for peer in ("llama.cpp", "naive"):
        theirs = results.get(peer, {})
        for point, mine in ours.items():
            other = theirs.get(point) or {}
            if (
                not point.startswith("c=")
                or not other
                or "ttft_s" not in other
                or "ttft_s" not in mine
            ):
                continue
            speed = mine["output_tokens_per_s"] / max(other["output_tokens_per_s"], 1e-9)
            ttft = other["ttft_s"]["p50"] / max(mine["ttft_s"]["p50"], 1e-9)
            lines.append(
                f"ragserve / {peer} at {point}: output tokens/s {speed:.2f}x, "
                f"TTFT p50 {mine['ttft_s']['p50']:.2f} s vs {other['ttft_s']['p50']:.2f} s "
                f"({ttft:.2f}x faster)"
            )
    return lines


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tokenizer = Tokenizer.from_file(str(REPO / ".cache" / "models" / MODEL / "tokenizer.json"))
    questions = prompts(lambda text: len(tokenizer.encode(text).ids), 400)
    info = machine()
    print(describe(info), flush=True)
    naive_dtype = "bfloat16" if "avx512_bf16" in info["cpu_flags"] else "float32"
    results: dict[str, dict[str, Any]] = {}
    peers: dict[str, Any] = {}
    for name in args.servers.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-serve-{name}-") as tmp:
            root = Path(tmp)
            if name == "ragserve":
                env = dict(item.split("=", 1) for item in args.env)
                peer = start_ragserve(root, env)
                peer.info = {"env": env}
            elif name == "llama.cpp":
                peer = start_llama_cpp(root)
            elif name == "naive":
                peer = start_naive(root, naive_dtype)
            else:
                raise SystemExit(f"unknown server {name!r}")
            peer.temperature = args.temperature
            try:
                levels = [int(c) for c in args.concurrency.split(",")] if args.concurrency else None
                results[name] = await measure(peer, questions, args.quick, levels, args.multi_turn)
                peers[name] = peer.info
            finally:
                peer.stop()
    return {
        "benchmark": "serve",
        "quick": args.quick,
        "machine": info,
        "load": {
            "max_tokens": MAX_TOKENS,
            "temperature": args.temperature,
            "prompt": "~450 tokens: Python reference passages + a question",
            "slo": {"ttft_s": SLO_TTFT_S, "tpot_s": SLO_TPOT_S},
        },
        "servers": peers,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--servers", default="ragserve,llama.cpp,naive")
    parser.add_argument(
        "--concurrency", help="only these closed-loop points, e.g. 1,32 (no rate sweep)"
    )
    parser.add_argument(
        "--multi-turn", action="store_true", help="only the 3-turn conversations (and warm-up)"
    )
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="sample at this temperature (0: greedy)"
    )
    parser.add_argument(
        "--env", action="append", default=[], help="RAGSERVE_...=value for ragserve (repeatable)"
    )
    args = parser.parse_args()
    report = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "serve-quick" if args.quick else "serve"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stem}-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    png = plot(report["results"], RESULTS / f"{stem}-{stamp}.png", describe(report["machine"]))
    print(f"wrote {out} and {png}")
    for line in ratios(report["results"]):
        print(line)


if __name__ == "__main__":
    main()
