"""A registry change reaches another API node's catalog within its refresh period,
with no restart; a database blip keeps the last good registry."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from app.core.errors import ModelNotFoundError, UnavailableError
from app.routing.catalog import ModelCatalog
from app.routing.registry import ModelRegistry
from app.routing.specs import EndpointSpec, ModelSpec, RolloutSpec, VersionSpec

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def _version(version: str) -> VersionSpec:
    return VersionSpec("qwen", version, "remote", (EndpointSpec(f"http://{version}:8000"),))


async def test_a_change_on_one_node_reaches_another_within_the_refresh_period(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = ModelRegistry(sessions)
    await writer.create_model("qwen")
    await writer.add_version(_version("v1"))
    seen: list[dict[str, ModelSpec]] = []
    canary_seen = asyncio.Event()

    async def listener(models: dict[str, ModelSpec]) -> None:
        seen.append(models)
        if "qwen" in models and models["qwen"].rollout.canary == "v2":
            canary_seen.set()

    other_node = ModelCatalog(None, ModelRegistry(sessions), refresh_s=0.1)
    other_node.on_change(listener)
    await other_node.start()
    try:
        assert other_node.require("qwen").rollout.stable == "v1"
        await writer.add_version(_version("v2"))
        await writer.set_rollout("qwen", RolloutSpec("v1", canary="v2", canary_percent=5))
        await asyncio.wait_for(canary_seen.wait(), timeout=5)
        assert other_node.require("qwen").rollout.canary == "v2"
        assert seen[-1]["qwen"].rollout.canary_percent == 5
        calls = len(seen)
        await asyncio.sleep(0.3)
        assert len(seen) == calls, "an unchanged registry tells no listener"
    finally:
        await other_node.stop()


async def test_require_answers_404_for_unknown_or_forbidden_models_and_503_with_none(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    registry = ModelRegistry(sessions)
    empty = ModelCatalog(None, registry)
    await empty.start()
    with pytest.raises(UnavailableError):
        empty.require(None)
    await registry.create_model("qwen", tenants=["t1"])
    await registry.add_version(_version("v1"))
    await empty.refresh()
    assert empty.require(None, "t1").name == "qwen", "the only model is the default"
    assert empty.require("QWEN", "t1").name == "qwen", "names compare by their served id"
    with pytest.raises(ModelNotFoundError):
        empty.require("qwen", "t2")
    with pytest.raises(ModelNotFoundError):
        empty.require("llama", "t1")
    assert [m.name for m in empty.visible_to("t2")] == []
    await empty.stop()
