"""Real parts for retrieval integration tests: MiniLM, a SQLite file, the vector store on
every embedded engine (Qdrant Edge in a child process and in this one, qdrant-client's
local mode; no Qdrant server runs here), and the ingestion queues, in-process and on
the real Redis of ``redis_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis

from kernel.db import create_engine, session_factory
from kernel.orm import Base
from retrieval.embedding import SentenceTransformerEmbedder
from retrieval.ingest_queue import IngestQueue, InProcessIngestQueue, RedisStreamsIngestQueue
from retrieval.service import RetrievalService
from retrieval.vector_store import (
    EdgeVectorStore,
    ProcessEdgeVectorStore,
    QdrantVectorStore,
    VectorStore,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.ext.asyncio import async_sessionmaker

MakeQueue = Callable[..., IngestQueue]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    return SentenceTransformerEmbedder(batch_size=32)


ENGINES = ["edge-process", "edge", "local"]
# NOTE: the other retrieval tests run on the default engine and local mode only: the
# in-process Edge store runs the very code the child runs, and the contract suite
# (every engine) proves the two answer alike.
STORE_ENGINES = ["edge-process", "local"]


def make_store(engine: str, folder: Path, **options: Any) -> VectorStore:
    """A vector store of one embedded engine in ``folder``."""
    if engine == "edge-process":
        return ProcessEdgeVectorStore(folder / "edge", collection_name="test_chunks", **options)
    if engine == "edge":
        return EdgeVectorStore(folder / "edge", collection_name="test_chunks", **options)
    return QdrantVectorStore(path=str(folder / "qdrant"), collection_name="test_chunks", **options)


@pytest.fixture(params=STORE_ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    """The vector store on the default engine and on local mode: every test body runs on both."""
    vector_store = make_store(request.param, tmp_path)
    yield vector_store
    await vector_store.close()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker]:
    """A SQLite file through the project's engine factory (WAL, busy timeout), as served.

    NOTE: a bare engine (rollback journal, 5 s lock timeout) made the concurrent
    worker and poller of the ingestion tests fail now and then with "database is
    locked", a failure the served configuration does not have.
    """
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ragserve.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def service(
    sessions: async_sessionmaker,
    embedder: SentenceTransformerEmbedder,
    store: VectorStore,
) -> AsyncIterator[RetrievalService]:
    retrieval = RetrievalService(sessions, embedder, store, chunk_tokens=200, chunk_overlap=40)
    await retrieval.start()
    yield retrieval
    await retrieval.close()


@pytest.fixture(params=["memory", "redis"])
async def make_queue(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[MakeQueue]:
    """Builds ingestion queues of one kind, so one test body runs on both.

    The options are those the two share (``claim_idle_s``, ``max_deliveries``,
    ``max_queued``). Redis queues of one test share one stream and consumer group,
    like the worker nodes of one deployment, under the test's key prefix.
    """
    clients: list[Redis] = []

    def make(**options: Any) -> IngestQueue:
        if request.param == "memory":
            return InProcessIngestQueue(**options)
        client = Redis.from_url(redis_url)
        clients.append(client)
        return RedisStreamsIngestQueue(client, f"{redis_prefix}ingest", "workers", **options)

    yield make
    for client in clients:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
