"""A storm of cache-bypassing searches over 100k chunks must not stall anything else.

Guards the bound issue 16 states: while the storm runs, a streamed answer's tokens
come with no gap over 250 ms and ``/healthz`` answers within 100 ms. The 250 ms is a
stall on top of the machine's own token interval (the turn's median gap: 20-40 ms on
a Xeon with AMX, 130 ms on an AVX2-only EPYC, where the model runs in fp32). qdrant-client's
local mode used to scan 100k points in Python on the loop (about 4 s a hybrid query);
Qdrant Edge in the server's own process holds the GIL for each query, so a sustained
storm slowed generation (gaps of 0.24-0.59 s on loaded cores). A real ``ragserve
serve`` process with its default store, Qdrant Edge in a child process; its 100k
chunks are random unit vectors written through an in-process ``EdgeVectorStore``
before the server starts (the embedder would take minutes; this takes ~7 s).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import threading
import time
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest

from retrieval.vector_store import DEFAULT_COLLECTION_NAME, ChunkPoint, EdgeVectorStore
from tests.e2e.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.model

POINTS = 100_000
DIMENSION = 384
STORM_THREADS = 6
MAX_TOKEN_GAP_S = 0.25
MAX_HEALTHZ_S = 0.1
WORDS = [f"w{i}" for i in range(3000)]


def chunk_points(tenant_id: str) -> list[ChunkPoint]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(POINTS, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = rng.integers(0, len(WORDS), size=(POINTS, 8))
    return [
        ChunkPoint(
            tenant_id,
            "default",
            f"doc-{i // 100}",
            f"doc-{i // 100}.txt",
            i % 100,
            " ".join(WORDS[w] for w in words[i]),
            vectors[i],
        )
        for i in range(POINTS)
    ]


async def build_corpus(data_dir: Path, tenant_id: str) -> None:
    store = EdgeVectorStore(data_dir / "qdrant_edge", collection_name=DEFAULT_COLLECTION_NAME)
    await store.ensure_ready(DIMENSION)
    await store.upsert(chunk_points(tenant_id))
    assert await store.count(tenant_id) == POINTS
    await store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path_factory.mktemp("storm")
    env = {"RAGSERVE_RATE_LIMIT_ENABLED": "false", "RAGSERVE_SAFETY_ENABLED": "false"}
    server = Server(data_dir, extra_env=env)
    server.cli("migrate")
    tenant_id = server.cli("tenants", "create", "storm").strip().splitlines()[-1]
    key = server.create_key("storm")
    asyncio.run(build_corpus(data_dir, tenant_id))
    server.start()
    yield server, key
    server.stop()


def test_tokens_and_probes_keep_moving_during_a_search_storm(server: tuple[Server, str]) -> None:
    running, key = server
    auth = {"Authorization": f"Bearer {key}"}
    stop = threading.Event()
    answered: dict[int, int] = {}
    lock = threading.Lock()

    def storm(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=running.url, headers=auth, timeout=60) as client:
            while not stop.is_set():
                query = " ".join(WORDS[w] for w in rng.integers(0, len(WORDS), size=3))
                response = client.post(
                    "/v1/search", json={"query": query, "k": 20, "use_cache": False}
                )
                # A search beyond the store's bound is refused with Retry-After, not queued.
                assert response.status_code in (200, 429), response.text
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1
                with lock:
                    answered[response.status_code] = answered.get(response.status_code, 0) + 1

    probes: list[float] = []
    workers = [threading.Thread(target=storm, args=(seed,)) for seed in range(STORM_THREADS)]
    probing = threading.Thread(target=probe_healthz, args=(running.url, probes, stop))
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 30
        while answered.get(200, 0) < 20:
            assert time.monotonic() < deadline, "the storm never got going"
            time.sleep(0.05)
        before = dict(answered)
        warm = time.monotonic() - deadline + 30
        # NOTE: the timestamps are taken here, in the test process, which by the end
        # of a full suite holds a large heap: a full collection there would be
        # charged to the server. (One CI run saw a 0.8-0.9 s stall of both the tokens
        # and the probes that never shows when this test runs alone.) Collect now,
        # timed, and not during the measurement.
        collect_started = time.perf_counter()
        gc.collect()
        collect_s = time.perf_counter() - collect_started
        gc.disable()
        probing.start()
        token_times = stream_turn(running.url, auth)
        during = answered.get(200, 0) - before.get(200, 0)
    finally:
        gc.enable()
        stop.set()
        for worker in workers:
            worker.join()
        if probing.is_alive():
            probing.join()
    assert len(token_times) >= 30, "the answer is too short to measure gaps"
    gaps = [b - a for a, b in itertools.pairwise(token_times)]
    print(
        f"storm: {len(token_times)} tokens in {token_times[-1] - token_times[0]:.1f}s, "
        f"max gap {max(gaps):.3f}s (after token {gaps.index(max(gaps)) + 1}), "
        f"{during} searches, {answered}, "
        f"healthz max {max(probes):.3f}s over {len(probes)} probes, "
        f"warm-up {warm:.1f}s, test-process gc.collect {collect_s:.3f}s"
    )
    assert during >= 10, f"the storm stalled during the turn: {answered}"
    usual = statistics.median(gaps)
    assert max(gaps) - usual < MAX_TOKEN_GAP_S, (
        f"token gap {max(gaps):.3f}s (median {usual:.3f}s) during {during} searches"
    )
    assert probes
    assert max(probes) < MAX_HEALTHZ_S, f"/healthz took {max(probes):.3f}s"


def stream_turn(url: str, auth: dict[str, str]) -> list[float]:
    """A streamed chat turn; the arrival time of each of its tokens."""
    times: list[float] = []
    with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
        conversation = client.post("/v1/conversations", json={}).json()
        body = {
            "content": "Tell me a long story about a lighthouse keeper and the sea.",
            "options": {"max_tokens": 120, "retrieval_k": 0},
        }
        with client.stream(
            "POST",
            f"/v1/conversations/{conversation['id']}/messages",
            json=body,
            headers={"Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line == "event: token":
                    times.append(time.perf_counter())
    return times


def probe_healthz(url: str, latencies: list[float], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.1)
