"""Faults of ingestion on real ``ragserve worker`` processes, PostgreSQL and Redis.

The test process submits uploads as an API node does (``RetrievalService`` with no
workers of its own, on the shared Redis stream); the workers are real processes,
killed with SIGKILL. Each test's docstring says what it guards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from kernel.db import create_engine, session_factory
from kernel.migrations import upgrade_async
from retrieval import (
    EdgeVectorStore,
    RedisStreamsIngestQueue,
    RetrievalService,
    SentenceTransformerEmbedder,
)
from retrieval.errors import FAILURES
from retrieval.models import DocumentRow, DocumentUploadRow
from tests.e2e.server import RAGSERVE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

pytestmark = [pytest.mark.faults, pytest.mark.model]

TENANT = "55555555-5555-5555-5555-555555555555"
MAX_ATTEMPTS = 2
# Thousands of chunks: indexing it takes far longer than the test waits.
BIG = (
    "The pump manual says: inspect the valve, record the pressure, replace the "
    "filter if it is clogged, and sign the log book before restarting. "
) * 12_000


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(batch_size=32)


class Deployment:
    """One database, one Redis stream, an API-side service and worker processes."""

    def __init__(self, env: dict[str, str], sessions: async_sessionmaker[AsyncSession]) -> None:
        self.env = env
        self.sessions = sessions
        self.log = Path(env["RAGSERVE_DATA_DIR"]) / "worker.log"

    def start_worker(self, timeout_s: float = 120.0) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            worker = subprocess.Popen(
                [RAGSERVE, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while "ingestion worker running" not in self.log.read_text().split("--- start")[-1]:
            assert worker.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        return worker

    def mark_start(self) -> None:
        with self.log.open("a") as log:
            log.write("\n--- start\n")

    async def state(self, document_id: str) -> tuple[str, int | None, str | None]:
        """The document's status, its upload's attempts (None: no upload), its error code."""
        async with self.sessions() as session:
            row = await session.get(DocumentRow, document_id)
            assert row is not None
            attempts = await session.scalar(
                select(DocumentUploadRow.attempts).where(
                    DocumentUploadRow.document_id == document_id
                )
            )
            return row.status, attempts, row.error_code


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def processes_end(pids: list[int], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
async def deployment(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[Deployment]:
    await upgrade_async(postgres_url)
    data_dir = tmp_path / "worker"
    data_dir.mkdir()
    env = {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(data_dir),
        "RAGSERVE_DATABASE_URL": postgres_url,
        "RAGSERVE_REDIS_URL": redis_url,
        "RAGSERVE_REDIS_KEY_PREFIX": redis_prefix,
        "RAGSERVE_INGESTION_CLAIM_IDLE_S": "1",
        "RAGSERVE_INGESTION_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "RAGSERVE_LOG_LEVEL": "warning",
    }
    engine = create_engine(postgres_url)
    yield Deployment(env, session_factory(engine))
    await engine.dispose()
    client = Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_a_document_that_kills_its_worker_fails_after_max_attempts(
    deployment: Deployment,
    embedder: SentenceTransformerEmbedder,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """Guards against a crash loop: a document whose every attempt dies with its worker
    (``kill -9`` mid-document, here) had no bound, as nothing counted attempts. Each
    attempt is now counted in SQL as it starts; after the max the document ends
    ``failed`` with a code and a safe message, the worker goes on with other
    documents, and the killed worker's extraction process died with it.
    """
    redis = Redis.from_url(redis_url)
    queue = RedisStreamsIngestQueue(
        redis, f"{redis_prefix}ingest", "ingest-workers", claim_idle_s=1.0
    )
    store = EdgeVectorStore(tmp_path / "api-edge", collection_name="unused")
    api = RetrievalService(deployment.sessions, embedder, store, queue=queue, ingest_workers=0)
    await api.start()
    try:
        doomed = (await api.submit(TENANT, "doomed.txt", BIG.encode())).document.id
        for attempt in range(1, MAX_ATTEMPTS + 1):
            deployment.mark_start()
            worker = deployment.start_worker()

            async def started(attempt: int = attempt) -> bool:
                return await deployment.state(doomed) == ("indexing", attempt, None)

            await until(started)
            # Its extraction server is up (the document is read first, in it).
            deadline = time.monotonic() + 30
            while not (helpers := children(worker.pid)):
                assert time.monotonic() < deadline, "no extraction process appeared"
                await asyncio.sleep(0.05)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)

            assert processes_end(helpers, within_s=10), "the extraction process outlived it"

        deployment.mark_start()
        worker = deployment.start_worker()
        try:

            async def failed() -> bool:
                return (await deployment.state(doomed))[0] == "failed"

            await until(failed)
            document = await api.get_document(TENANT, doomed)
            assert document.error_code == "too_many_attempts"
            assert document.error == FAILURES["too_many_attempts"]
            assert document.chunk_count == 0
            assert (await deployment.state(doomed))[1] is None  # the upload is dropped
            # The same worker goes on: the next document is indexed.
            fine = (await api.submit(TENANT, "fine.txt", b"Valves are closed first.")).document
            [done] = await api.wait_for(TENANT, [fine.id], timeout_s=60)
            assert done.status == "ready"
            assert done.chunk_count == 1
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    finally:
        await api.close()
        await redis.aclose()
