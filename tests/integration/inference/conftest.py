"""Fixtures loading the real SmolLM2 model once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from inference.loader import LoadedModel, load_model
from inference.local_engine import LocalEngine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CACHE_DIR = Path(__file__).resolve().parents[3] / ".cache" / "models"


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    """Where the packaged GGUF is converted once; kept between runs so they stay fast."""
    return CACHE_DIR


@pytest.fixture(scope="session")
def loaded_fp32(model_cache_dir: Path) -> LoadedModel:
    """SmolLM2-135M-Instruct in float32, so greedy output is comparable with HF."""
    return load_model(None, model_cache_dir, dtype="float32", device="cpu")


@pytest.fixture(scope="session")
async def engine(loaded_fp32: LoadedModel) -> AsyncIterator[LocalEngine]:
    """A started float32 engine shared by the tests that leave it idle."""
    local = LocalEngine(lambda: loaded_fp32)
    await local.start()
    yield local
    await local.stop()
