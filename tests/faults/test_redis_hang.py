"""A Redis that stops answering (SIGSTOP: connections open, no replies) under a real
``ragserve serve``, and its recovery (SIGCONT).

Every Redis path of the API process is walked while Redis is stopped: rate limits,
hot conversation state, the token buffer behind WebSocket resume (a turn Redis cannot
take is buffered in the process), the ingestion queue and the readiness probe. Each
must degrade at once rather than hang: after the first timeout the client's breaker
(``kernel/redis_breaker.py``) fails Redis calls without touching the network for
``RAGSERVE_REDIS_FAILURE_COOLDOWN_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.server import Server, free_port
from tests.e2e.ws_client import connect, send, until_end

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

COOLDOWN_S = 4.0
CHAT = {
    "content": "Tell me a short story about a lighthouse.",
    "options": {"max_tokens": 24, "temperature": 0.0, "retrieval_k": 0},
}


class RedisProcess:
    """A private ``redis-server`` this module may stop and continue."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data_dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while self.cli("PING") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path_factory.mktemp("redis-hang"))
    try:
        yield redis
    finally:
        redis.close()


@pytest.fixture(scope="module")
def server(
    redis_process: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("ragserve-redis-hang"),
        {
            "RAGSERVE_REDIS_URL": redis_process.url,
            "RAGSERVE_REDIS_FAILURE_COOLDOWN_S": str(COOLDOWN_S),
            "RAGSERVE_QDRANT_ENGINE": "edge-inprocess",
        },
    )
    server.cli("migrate")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def _chat(
    server: Server, key: str, conversation_id: str | None = None
) -> tuple[str, str, list[dict[str, Any]]]:
    """One WebSocket turn to its end: (message id, conversation id, its events)."""
    async with await connect(server.ws_url, key) as ws:
        await send(ws, "chat", "t", {**CHAT, "conversation_id": conversation_id})
        events = await until_end(ws, "t")
    started = next(e["payload"] for e in events if e["type"] == "conversation")
    return started["message_id"], started["conversation_id"], events


async def _resume(server: Server, key: str, message_id: str) -> list[dict[str, Any]]:
    async with await connect(server.ws_url, key) as ws:
        await send(ws, "resume", "r", {"message_id": message_id, "after_index": -1})
        return await until_end(ws, "r")


def _upload(client: httpx.Client, name: str) -> httpx.Response:
    body = f"The {name} lighthouse was built in 1871 and is painted red.".encode()
    return client.post("/v1/documents", files={"files": (f"{name}.txt", body, "text/plain")})


def _wait_ready(client: httpx.Client, document_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        document = client.get(f"/v1/documents/{document_id}").json()
        if document["status"] in ("ready", "failed"):
            return dict(document)
        time.sleep(0.5)
    raise AssertionError(f"document {document_id} not indexed in 120 s")


def _stored(client: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def test_a_stopped_redis_degrades_every_path_at_once_and_recovers(
    server: Server, redis_process: RedisProcess
) -> None:
    """Guards: a hung Redis costs one timeout, not one per request or per token; no
    request fails or hangs for it but the ones that need Redis (an upload: 503 and
    nothing stored); rate limits still hold (per process); everything uses Redis
    again once it answers."""
    key = server.create_key("hang")
    tight = server.cli(
        "keys", "create", "--tenant", "hang", "--scope", "chat",
        "--rate-limit-burst", "3", "--rate-limit-rate", "0.001",
    ).strip().splitlines()[-1]  # fmt: skip
    with _client(server, key) as client:
        uploaded = _upload(client, "before")
        assert uploaded.status_code == 202, uploaded.text
        _wait_ready(client, uploaded.json()["documents"][0]["document"]["id"])
        _, conversation_id, _ = asyncio.run(_chat(server, key))
        documents_before = client.get("/v1/documents").json()["data"]

        with redis_process.stopped():
            # The first request meets the hung Redis and pays one read timeout (5 s).
            started = time.monotonic()
            assert client.get("/v1/conversations").status_code == 200
            first_s = time.monotonic() - started
            # The next ones do not touch Redis at all while the breaker is open.
            started = time.monotonic()
            for _ in range(10):
                assert client.get("/v1/conversations").status_code == 200
            ten_s = time.monotonic() - started
            assert ten_s < COOLDOWN_S, (first_s, ten_s)

            # A turn streams to its end; its history came from SQL, its tokens were
            # not buffered (a hung buffer would stall each token for 5 s).
            message_id, _, events = asyncio.run(_chat(server, key, conversation_id))
            assert events[-1]["type"] == "done", events[-1]
            tokens = [e["payload"]["text"] for e in events if e["type"] == "token"]
            stored = _stored(client, conversation_id)
            assert [m["role"] for m in stored] == ["user", "assistant"] * 2
            assert stored[-1]["id"] == message_id
            assert stored[-1]["content"] == "".join(tokens)

            # The turn was buffered in this process instead: it resumes here.
            resumed = asyncio.run(_resume(server, key, message_id))
            assert resumed[-1]["type"] == "done", resumed[-1]
            assert [e["payload"]["text"] for e in resumed if e["type"] == "token"] == tokens

            # An upload needs the queue: 503 with Retry-After, and nothing stored.
            refused = _upload(client, "during")
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"]
            assert client.get("/v1/documents").json()["data"] == documents_before

            # Rate limits hold in the process's own buckets.
            with _client(server, tight) as limited:
                codes = [limited.get("/v1/conversations").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429], codes

            # The node stays in the load balancer, marked degraded.
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["redis"] in ("failed", "timeout")

        # Redis answers again: within a cooldown every path uses it.
        deadline = time.monotonic() + COOLDOWN_S + 15
        while client.get("/readyz").json()["status"] != "ready":
            assert time.monotonic() < deadline, "Redis not used again after SIGCONT"
            time.sleep(0.5)
        uploaded = _upload(client, "after")
        assert uploaded.status_code == 202, uploaded.text
        document_id = uploaded.json()["documents"][0]["document"]["id"]
        assert _wait_ready(client, document_id)["status"] == "ready"
        message_id, _, events = asyncio.run(_chat(server, key))
        resumed = asyncio.run(_resume(server, key, message_id))
        assert resumed[-1]["type"] == "done", resumed[-1]
        replayed = [e["payload"]["text"] for e in resumed if e["type"] == "token"]
        assert replayed == [e["payload"]["text"] for e in events if e["type"] == "token"]
        assert redis_process.cli("--scan", "--pattern", "ragserve:rl:*")
        assert json.loads(client.get("/healthz").text)
