"""The serving control plane on real processes: what routing gives and what it costs.

One run starts two ``ragserve inference`` nodes (a and b, one torch thread each) and
one API node (``ragserve serve`` over them, retrieval and safety off, no rate
limits), registers ``bench-one`` (v1 on a; v2 on b, only ever a shadow) and
``bench-two`` (v1 on a and b), and measures:

- **One node against two**: the OpenAI client streaming through the API node at
  concurrency 8 and 16 (closed loop), the same short prompts of real text (a passage
  of the Python reference and a question about it), ``max_tokens`` 32, greedy:
  output tokens/s, requests/s, TTFT and latency p50/p95, and two over one.
- **The router's own latency**: in-process, the same requests streamed one at a
  time (a) with ``RemoteEngine`` straight at node a and (b) through a ``Router``
  built as ``app/server/components.py`` builds it, over node a alone; TTFT and total
  p50/p95 of both, (b) minus (a) and the median paired difference, interleaved so
  both see the same machine; and, inside the routed requests, the router's own time
  before its engine is asked and per event (``bench/routing_inprocess.py``).
- **The API node's whole overhead per turn**: ``/v1/chat/completions`` on the API
  node (retrieval off: conversation and messages stored, prompt built, routed,
  answer stored) against node a's own ``/v1/chat/completions`` with the very
  messages the API node sends it, interleaved.
- **Shadowing**: ``bench-one`` at concurrency 8 with no shadow, then with v2 on node b
  shadowing every turn (sample rate 1.0): the primary's TTFT, latency and
  throughput, and the shadow copies completed, failed and dropped.

NOTE: on a 2-core machine the two nodes, the API node and the client share two
cores, so two nodes need not beat one: the figures say what this machine does,
and the JSON records its CPU flags. The nodes run float32 (as the tests do) unless
``--dtype`` says otherwise, and keep no prefix cache: every request pays its whole
prefill wherever it lands, and the paired sequential comparisons send the same
prompt twice without the second being a cache hit.

Run ``python -m bench.routing [--quick]`` from the repository root (a full run takes
about 9 minutes on an idle 2-core machine, ``--quick`` about 3); JSON goes to
``bench/results/routing-<UTC timestamp>.json`` (``routing-quick-...`` for quick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from app.chat.prompt import build_messages
from bench.machine import describe, machine
from bench.routing_inprocess import router_overhead
from bench.routing_load import (
    MAX_TOKENS,
    Prompts,
    Sample,
    alternate,
    as_dict,
    closed_loop,
    difference,
    ratios,
    row,
    stream_openai,
    summarise,
)

# NOTE: the end-to-end tests' process helpers start, probe and stop the real servers.
from tests.e2e.server import Server
from tests.support.inference_node import InferenceNode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"


@dataclass
class Deployment:
    """Two inference nodes and the API node over them."""

    nodes: list[InferenceNode]
    api: Server
    key: str = ""
    admin_key: str = ""

    def api_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.api.url}/v1", api_key=self.key, max_retries=0, timeout=300
        )

    def node_client(self, node: InferenceNode) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{node.url}/v1", api_key="none", max_retries=0, timeout=300
        )

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(
            method,
            f"{self.api.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=30,
        )
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.api.url}/metrics", timeout=10).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def start(root: Path, dtype: str) -> Deployment:
    env = {
        "RAGSERVE_GENERATION_THREADS": "1",
        "RAGSERVE_GENERATION_DTYPE": dtype,
        "RAGSERVE_GENERATION_PREFIX_CACHE_MB": "0",
    }
    nodes = []
    for name in ("a", "b"):
        (root / name).mkdir()
        nodes.append(InferenceNode(root / name, env))
    (root / "api").mkdir()
    api = Server(
        root / "api",
        {
            "RAGSERVE_GENERATION_BACKEND_URLS": nodes[0].url,
            "RAGSERVE_SAFETY_ENABLED": "false",
            "RAGSERVE_RATE_LIMIT_ENABLED": "false",
            "RAGSERVE_GENERATION_MAX_TOKENS": str(MAX_TOKENS),
            # The node-direct requests carry none either: same sampling, same answers.
            "RAGSERVE_GENERATION_REPETITION_PENALTY": "1.0",
        },
    )
    deployment = Deployment(nodes, api)
    for node in nodes:
        node.start()
    api.cli("migrate")
    deployment.key = api.create_key("bench")
    deployment.admin_key = api.cli(
        "keys", "create", "--tenant", "ops", "--role", "admin",
        "--scope", "chat", "--scope", "platform:admin",
    ).strip().splitlines()[-1]  # fmt: skip
    api.start()
    a, b = nodes
    for model, versions in (
        ("bench-one", {"v1": [a], "v2": [b]}),
        ("bench-two", {"v1": [a, b]}),
    ):
        deployment.admin("POST", "/v1/admin/models", {"name": model})
        for version, served_by in versions.items():
            endpoints = [{"url": n.url} for n in served_by]
            body = {"version": version, "backend": "remote", "endpoints": endpoints}
            deployment.admin("POST", f"/v1/admin/models/{model}/versions", body)
    return deployment


def stop(deployment: Deployment) -> None:
    deployment.api.stop()
    for node in deployment.nodes:
        node.stop()


def through_api(deployment: Deployment, model: str) -> Callable[[str], Awaitable[Sample]]:
    client = deployment.api_client()
    extra = {"retrieval": {"enabled": False}}

    def send(question: str) -> Awaitable[Sample]:
        return stream_openai(client, model, [{"role": "user", "content": question}], extra)

    return send


async def scale_out(
    deployment: Deployment, prompts: Prompts, points: list[int], per_client: int
) -> Any:
    """The same kind of load through the API node over one node, then over two."""
    out: dict[str, Any] = {}
    for concurrency in points:
        count = concurrency * per_client
        one = summarise(
            await closed_loop(
                through_api(deployment, "bench-one"), prompts.take(count), concurrency
            )
        )
        two = summarise(
            await closed_loop(
                through_api(deployment, "bench-two"), prompts.take(count), concurrency
            )
        )
        out[f"c{concurrency}"] = {
            "one_node": one,
            "two_nodes": two,
            "two_over_one": ratios(two, one),
        }
        for name, s in (("one node", one), ("two nodes", two)):
            print(f"  c{concurrency:<3d} {name:10s} {row(s)}", flush=True)
        r = out[f"c{concurrency}"]["two_over_one"]
        print(f"  c{concurrency:<3d} two/one    " + "  ".join(f"{k} {v}" for k, v in r.items()))
    return out


async def api_overhead(deployment: Deployment, prompts: Prompts, rounds: int) -> Any:
    """A whole turn through the API node against the node answering the same messages."""
    node = deployment.node_client(deployment.nodes[0])

    def direct(question: str) -> Awaitable[Sample]:
        messages = [as_dict(m) for m in build_messages(question, [], [])]
        return stream_openai(node, MODEL, messages, {})

    a, b = await alternate(direct, through_api(deployment, "bench-one"), prompts, rounds)
    return difference("node_direct", a, "api_node", b)


async def shadowing(
    deployment: Deployment, prompts: Prompts, concurrency: int, per_client: int
) -> Any:
    """``bench-one`` without a shadow, then with v2 shadowing every turn."""
    count = concurrency * per_client
    deployment.admin("PUT", "/v1/admin/models/bench-one/rollout", {"stable": "v1"})
    send = through_api(deployment, "bench-one")
    off = summarise(await closed_loop(send, prompts.take(count), concurrency))
    print(f"  shadow off {row(off)}", flush=True)
    rollout = {"stable": "v1", "shadows": [{"version": "v2", "sample_rate": 1.0}]}
    deployment.admin("PUT", "/v1/admin/models/bench-one/rollout", rollout)
    counts = {o: deployment.metric("ragserve:shadow_requests_total", outcome=o) for o in OUTCOMES}
    on = summarise(await closed_loop(send, prompts.take(count), concurrency))
    print(f"  shadow on  {row(on)}", flush=True)

    def shadow_counts() -> dict[str, int]:
        return {
            o: int(deployment.metric("ragserve:shadow_requests_total", outcome=o) - counts[o])
            for o in OUTCOMES
        }

    for _ in range(240):  # the copies still queued get up to 2 minutes to finish
        if sum(shadow_counts().values()) >= count:
            break
        await asyncio.sleep(0.5)
    deployment.admin("PUT", "/v1/admin/models/bench-one/rollout", {"stable": "v1"})
    shadows = shadow_counts()
    print(f"  shadow copies {shadows} of {count} turns; on/off {ratios(on, off)}")
    return {"off": off, "on": on, "on_over_off": ratios(on, off), "shadow_copies": shadows}


OUTCOMES = ("completed", "failed", "dropped")


def environment(dtype: str) -> dict[str, Any]:
    return {**machine(), "node_threads": 1, "dtype": dtype, "max_tokens": MAX_TOKENS}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = environment(args.dtype)
    print(f"{describe(env)}; dtype {args.dtype}")
    prompts = Prompts()
    points = [8] if args.quick else [8, 16]
    per_client = 1 if args.quick else 2
    rounds = 10 if args.quick else 30
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        deployment = start(Path(tmp), args.dtype)
        try:
            warm = through_api(deployment, "bench-two")
            await closed_loop(warm, prompts.take(8), 4)
            print("\nOne node against two, through the API node (OpenAI streaming):")
            scale = await scale_out(deployment, prompts, points, per_client)
            print("\nThe router's added latency (in-process, sequential):")
            router = await router_overhead(deployment.nodes[0], prompts, rounds)
            print("\nThe API node's whole turn against the node directly (sequential):")
            api = await api_overhead(deployment, prompts, rounds // 2)
            print("\nShadowing (v2 on node b shadows every turn of v1 on node a):")
            shadow = await shadowing(deployment, prompts, 8, per_client)
        finally:
            stop(deployment)
    return {
        "benchmark": "routing",
        "quick": args.quick,
        "environment": env,
        "workload": {
            "prompts": "a fresh passage of pydoc_data.topics and a question per request",
            "max_tokens": MAX_TOKENS,
            "greedy": True,
            "requests_per_client": per_client,
            "sequential_rounds": rounds,
        },
        "scale_out": scale,
        "router_overhead": router,
        "api_overhead": api,
        "shadowing": shadow,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests, c8 only (~3 min)")
    parser.add_argument("--dtype", default="float32", help="the nodes' dtype (float32, auto)")
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"routing-{'quick-' if args.quick else ''}{stamp}.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
