"""The whole of ragserve in one process for a benchmark: a throwaway data dir, migrated,
the packaged models, every service opened as ``ragserve serve`` opens them."""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.settings import Settings
from app.server.lifespan import open_state
from kernel.migrations import upgrade_async

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from litestar.datastructures import State

REPO = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def bench_services(
    configure: Callable[[Settings], None] | None = None,
) -> AsyncIterator[State]:
    """The opened services, closed (and their data dir removed) on exit; ``configure``
    edits the settings first."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        settings.generation.cache_dir = REPO / ".cache" / "models"
        if configure is not None:
            configure(settings)
        await upgrade_async(settings.database_url)
        async with AsyncExitStack() as stack:
            services = await open_state(settings, stack)
            assert services.pipeline is not None
            yield services
