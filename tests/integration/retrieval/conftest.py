"""Real parts for retrieval integration tests: MiniLM, Qdrant local mode, a SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from retrieval.embedding import SentenceTransformerEmbedder
from retrieval.models import Base
from retrieval.service import RetrievalService
from retrieval.vector_store import QdrantVectorStore


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    return SentenceTransformerEmbedder(batch_size=32)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[QdrantVectorStore]:
    vector_store = QdrantVectorStore(path=str(tmp_path / "qdrant"), collection_name="test_chunks")
    yield vector_store
    await vector_store.close()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ragserve.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def service(
    sessions: async_sessionmaker,
    embedder: SentenceTransformerEmbedder,
    store: QdrantVectorStore,
) -> AsyncIterator[RetrievalService]:
    retrieval = RetrievalService(sessions, embedder, store, chunk_tokens=200, chunk_overlap=40)
    await retrieval.start()
    yield retrieval
    await retrieval.close()
