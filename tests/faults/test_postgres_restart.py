"""PostgreSQL stopped and restarted under a real ``ragserve serve``.

The cluster is a throwaway one this module owns (``tests/support/postgres.py``), so
it can be stopped and restarted with ``pg_ctl`` while clients keep sending turns,
reads and uploads. What must hold: a client sees 200 or a 503 with ``Retry-After``
(never a 500, never a hang), whatever was answered 200 is stored, an upload accepted
before the restart is indexed after it, and the server needs no restart of its own.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from tests.e2e.server import Server
from tests.support.postgres import PgCluster

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

TURN = {"content": "Say hello.", "options": {"max_tokens": 6, "retrieval_k": 0}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    cluster.start()
    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user=cluster.user, autocommit=True
    ) as connection:
        connection.execute("CREATE DATABASE ragserve")
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def server(cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = f"postgresql+asyncpg://{cluster.user}@127.0.0.1:{cluster.port}/ragserve"
    server = Server(tmp_path_factory.mktemp("ragserve-pg-restart"), {"RAGSERVE_DATABASE_URL": url})
    server.cli("migrate")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _turn(client: httpx.Client) -> httpx.Response:
    created = client.post("/v1/conversations", json={})
    if created.status_code != 201:
        return created
    conversation_id = created.json()["id"]
    return client.post(f"/v1/conversations/{conversation_id}/messages", json=TURN)


def _assert_unavailable(response: httpx.Response) -> None:
    """A refusal a client can act on: 503, a Retry-After and a code (never a 500)."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert float(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] in ("database_unavailable", "unavailable")


def _wait_indexed(client: httpx.Client, document_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = client.get(f"/v1/documents/{document_id}")
        if response.status_code == 200 and response.json()["status"] in ("ready", "failed"):
            return dict(response.json())
        time.sleep(0.5)
    raise AssertionError(f"document {document_id} not indexed in 120 s")


def test_a_stopped_database_is_a_503_and_the_server_recovers_alone(
    server: Server, cluster: PgCluster
) -> None:
    """Guards: while PostgreSQL is down every request that needs it gets a 503 with
    Retry-After (``database_unavailable``), not a 500 or a hang; once it is back, the
    pool replaces its dead connections and the next requests succeed."""
    key = server.create_key("pg")
    with _client(server, key) as client:
        assert _turn(client).status_code == 200
        cluster.stop()
        try:
            _assert_unavailable(client.get("/v1/conversations"))
            _assert_unavailable(_turn(client))
            _assert_unavailable(
                client.post(
                    "/v1/documents", files={"files": ("a.txt", b"Some text.", "text/plain")}
                )
            )
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 503
        finally:
            cluster.start()
        assert client.get("/v1/conversations").status_code == 200
        assert _turn(client).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_a_restart_under_traffic_loses_nothing_that_was_answered(
    server: Server, cluster: PgCluster
) -> None:
    """Guards: a restart during turns, reads and an ingestion never yields a 500;
    every turn answered 200 is stored complete; an upload accepted just before the
    restart is indexed after it (the worker retries)."""
    key = server.create_key("pg-traffic")
    answered: list[tuple[str, str]] = []
    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with _client(server, key) as client:
            while not stop.is_set():
                response = _turn(client)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    message = response.json()["message"]
                    answered.append((message["conversation_id"], message["id"]))
                elif response.status_code == 503:
                    _assert_unavailable(response)
                else:
                    failures.append(f"{response.status_code}: {response.text[:300]}")
                reads = client.get("/v1/conversations")
                statuses.append(reads.status_code)
                if reads.status_code not in (200, 503):
                    failures.append(f"{reads.status_code}: {reads.text[:300]}")

    with _client(server, key) as client:
        upload = client.post(
            "/v1/documents",
            files={"files": ("lighthouse.txt", b"The lighthouse is red. " * 200, "text/plain")},
        )
        assert upload.status_code == 202, upload.text
        document_id = upload.json()["documents"][0]["document"]["id"]
        workers = [threading.Thread(target=traffic) for _ in range(2)]
        for worker in workers:
            worker.start()
        time.sleep(2)
        cluster.restart()
        time.sleep(4)
        stop.set()
        for worker in workers:
            worker.join(timeout=120)
        assert not failures, failures
        assert 200 in statuses[-4:], statuses
        for conversation_id, message_id in answered:
            response = client.get(f"/v1/conversations/{conversation_id}")
            assert response.status_code == 200, response.text
            stored = {m["id"]: m for m in response.json()["messages"]}
            assert stored[message_id]["status"] == "complete", stored[message_id]
        assert _wait_indexed(client, document_id)["status"] == "ready"
