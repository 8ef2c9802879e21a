"""Settings come from RAGSERVE_* variables, one prefix per section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_defaults_use_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGSERVE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'ragserve.db'}"
    assert settings.qdrant_path == tmp_path / "qdrant"
    assert settings.model_cache_dir == tmp_path / "models"


def test_sections_read_their_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGSERVE_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    monkeypatch.setenv("RAGSERVE_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("RAGSERVE_PORT", "9001")
    monkeypatch.setenv("RAGSERVE_GENERATION_MAX_TOKENS", "64")
    monkeypatch.setenv("RAGSERVE_RETRIEVAL_TOP_K", "7")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.qdrant.url == "http://qdrant:6333"
    assert settings.server.port == 9001
    assert settings.generation.max_tokens == 64
    assert settings.retrieval.top_k == 7
