"""The model registry on SQLite and PostgreSQL: versions, rollouts, promote and
rollback in one call, and the refusal of a rollout that could not be served."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from app.routing.registry import ModelRegistry
from app.routing.specs import EndpointSpec, RolloutSpec, SamplingDefaults, ShadowSpec, VersionSpec
from kernel.errors import ConflictError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def _remote(version: str, *urls: str, model: str = "qwen") -> VersionSpec:
    return VersionSpec(
        model=model,
        version=version,
        backend="remote",
        endpoints=tuple(EndpointSpec(u) for u in urls or ("http://10.0.0.1:8001",)),
        sampling=SamplingDefaults(temperature=0.2, max_tokens_limit=512),
        price_prompt_per_1k=0.5,
        price_completion_per_1k=1.5,
    )


@pytest.fixture
async def registry(sessions: async_sessionmaker[AsyncSession]) -> ModelRegistry:
    registry = ModelRegistry(sessions)
    await registry.create_model("qwen", description="Qwen on vLLM")
    return registry


async def test_the_first_version_becomes_stable_and_reads_back_whole(
    registry: ModelRegistry,
) -> None:
    model = await registry.add_version(_remote("v1", "http://a:8001", "http://b:8001"))
    assert model.rollout == RolloutSpec(stable="v1")
    v1 = model.versions["v1"]
    assert [e.url for e in v1.endpoints] == ["http://a:8001", "http://b:8001"]
    assert v1.sampling == SamplingDefaults(temperature=0.2, max_tokens_limit=512)
    assert (v1.price_prompt_per_1k, v1.price_completion_per_1k) == (0.5, 1.5)
    assert (await registry.load())["qwen"] == model


async def test_canary_promote_and_rollback_each_take_one_call(registry: ModelRegistry) -> None:
    await registry.add_version(_remote("v1"))
    await registry.add_version(_remote("v2"))
    split = await registry.set_rollout("qwen", RolloutSpec("v1", canary="v2", canary_percent=5))
    assert (split.rollout.canary, split.rollout.canary_percent) == ("v2", 5)

    promoted = await registry.promote("qwen")
    assert promoted.rollout == RolloutSpec(stable="v2")
    undone = await registry.rollback("qwen")
    assert undone.rollout.stable == "v1", "rollback without a canary undoes the promote"
    with pytest.raises(ConflictError):
        await registry.rollback("qwen")  # nothing left to undo

    await registry.set_rollout("qwen", RolloutSpec("v1", canary="v2", canary_percent=50))
    dropped = await registry.rollback("qwen")
    assert dropped.rollout == RolloutSpec(stable="v1"), "rollback with a canary drops it"


async def test_a_rollout_naming_an_unknown_or_misused_version_is_refused_and_changes_nothing(
    registry: ModelRegistry,
) -> None:
    await registry.add_version(_remote("v1"))
    await registry.add_version(_remote("v2"))
    bad = [
        RolloutSpec("v9"),
        RolloutSpec("v1", canary="v1", canary_percent=10),
        RolloutSpec("v1", canary="v2", canary_percent=101),
        RolloutSpec("v1", canary_percent=10),
        RolloutSpec("v1", shadows=(ShadowSpec("v1", 0.5),)),
        RolloutSpec("v1", shadows=(ShadowSpec("v2", 0.0),)),
        RolloutSpec("v1", tenant_pins={"t": "nope"}),
    ]
    for rollout in bad:
        with pytest.raises(InvalidInputError):
            await registry.set_rollout("qwen", rollout)
    assert (await registry.get("qwen")).rollout == RolloutSpec("v1")


async def test_bad_versions_are_refused_with_the_reason(registry: ModelRegistry) -> None:
    cases = [
        VersionSpec("qwen", "v1", "remote"),  # no endpoint
        VersionSpec("qwen", "v1", "remote", (EndpointSpec("ftp://x"),)),
        VersionSpec("qwen", "v1", "remote", (EndpointSpec("http://x", weight=0),)),
        VersionSpec("qwen", "v1", "remote", (EndpointSpec("http://x"), EndpointSpec("http://x"))),
        VersionSpec("qwen", "bad version", "remote", (EndpointSpec("http://x"),)),
        VersionSpec("qwen", "v1", "remote", (EndpointSpec("http://x"),), price_prompt_per_1k=-1),
        VersionSpec("qwen", "v1", "embedded", (EndpointSpec("http://x"),)),
    ]
    for spec in cases:
        with pytest.raises(InvalidInputError):
            await registry.add_version(spec)
    with pytest.raises(NotFoundError):
        await registry.add_version(_remote("v1", model="nope"))
    await registry.add_version(_remote("v1"))
    with pytest.raises(ConflictError):
        await registry.add_version(_remote("v1"))


async def test_a_version_in_the_rollout_cannot_be_deleted(registry: ModelRegistry) -> None:
    await registry.add_version(_remote("v1"))
    await registry.add_version(_remote("v2"))
    with pytest.raises(ConflictError):
        await registry.delete_version("qwen", "v1")
    await registry.delete_version("qwen", "v2")
    assert set((await registry.get("qwen")).versions) == {"v1"}
    with pytest.raises(NotFoundError):
        await registry.delete_version("qwen", "v2")


async def test_model_names_are_unique_and_checked(registry: ModelRegistry) -> None:
    with pytest.raises(ConflictError):
        await registry.create_model("qwen")
    with pytest.raises(InvalidInputError):
        await registry.create_model("Has Spaces")
    await registry.create_model("private", tenants=["t1"])
    await registry.add_version(_remote("v1", model="private"))
    private = await registry.get("private")
    assert private.allows("t1")
    assert not private.allows("t2")
