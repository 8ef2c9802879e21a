"""The model registry in SQL: models, their versions and each model's rollout.

Every write validates the whole rollout against the versions it names, so a
registry that was written is always one the router can serve. API nodes read it
whole (``load``) every few seconds: a change reaches every node without a restart.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.routing.specs import (
    EMBEDDED_URL,
    EndpointSpec,
    ModelSpec,
    RolloutSpec,
    SamplingDefaults,
    ShadowSpec,
    VersionSpec,
)
from app.routing.tables import ModelVersionRow, RegisteredModelRow, RolloutRow
from kernel.errors import ConflictError, InvalidInputError, NotFoundError
from kernel.orm import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["ModelRegistry", "validate_version"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,127}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"model name {name!r} must be 1-128 lower-case letters, digits, '.', '_', ':' "
            "or '-', starting with a letter or digit"
        )
    return name


def validate_version(spec: VersionSpec) -> VersionSpec:
    """``spec`` if it can be served, else ``InvalidInputError`` saying why."""
    if not _VERSION.match(spec.version):
        raise InvalidInputError(
            f"version {spec.version!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    if spec.backend == "embedded":
        if spec.endpoints and [e.url for e in spec.endpoints] != [EMBEDDED_URL]:
            raise InvalidInputError("an embedded version has no endpoints")
        spec = replace(spec, endpoints=(EndpointSpec(EMBEDDED_URL),))
    elif not spec.endpoints:
        raise InvalidInputError("a remote version needs at least one endpoint URL")
    for endpoint in spec.endpoints:
        if spec.backend == "remote" and not re.match(r"^https?://[^\s/]+", endpoint.url):
            raise InvalidInputError(f"endpoint {endpoint.url!r} is not an http(s) URL")
        if not (math.isfinite(endpoint.weight) and endpoint.weight > 0):
            raise InvalidInputError(f"endpoint {endpoint.url!r} needs a positive weight")
    if len({e.url for e in spec.endpoints}) != len(spec.endpoints):
        raise InvalidInputError("an endpoint URL is listed twice")
    prices = (spec.price_prompt_per_1k, spec.price_completion_per_1k, spec.price_per_compute_second)
    if any(not (math.isfinite(p) and p >= 0) for p in prices):
        raise InvalidInputError("prices must be finite and not negative")
    s = spec.sampling
    if s.temperature is not None and not 0 <= s.temperature <= 2:
        raise InvalidInputError("temperature must be between 0 and 2")
    for name, value in (
        ("max_tokens", s.max_tokens),
        ("max_tokens_limit", s.max_tokens_limit),
        ("context_tokens", s.context_tokens),
    ):
        if value is not None and value < 1:
            raise InvalidInputError(f"{name} must be at least 1")
    if s.max_tokens and s.max_tokens_limit and s.max_tokens > s.max_tokens_limit:
        raise InvalidInputError("max_tokens is above max_tokens_limit")
    if spec.api_key_name is not None and not re.match(
        r"^[A-Za-z0-9_.-]{1,128}$", spec.api_key_name
    ):
        raise InvalidInputError("api_key_name must be 1-128 letters, digits, '_', '.' or '-'")
    return spec


def _check_rollout(rollout: RolloutSpec, versions: set[str]) -> RolloutSpec:
    named = [rollout.stable, *([rollout.canary] if rollout.canary else [])]
    named += list(rollout.tenant_pins.values()) + [s.version for s in rollout.shadows]
    for version in named:
        if version not in versions:
            raise InvalidInputError(f"version {version!r} is not registered for this model")
    if not 0 <= rollout.canary_percent <= 100 or not math.isfinite(rollout.canary_percent):
        raise InvalidInputError("canary_percent must be between 0 and 100")
    if rollout.canary is None and rollout.canary_percent:
        raise InvalidInputError("canary_percent needs a canary version")
    if rollout.canary == rollout.stable:
        raise InvalidInputError("the canary is the stable version")
    shadowed = [s.version for s in rollout.shadows]
    if len(set(shadowed)) != len(shadowed):
        raise InvalidInputError("a shadow version is listed twice")
    for shadow in rollout.shadows:
        if shadow.version in (rollout.stable, rollout.canary):
            raise InvalidInputError(f"{shadow.version!r} serves traffic; it cannot shadow it")
        if not 0 < shadow.sample_rate <= 1:
            raise InvalidInputError("a shadow's sample_rate must be in (0, 1]")
    return rollout


def _version_spec(model: str, row: ModelVersionRow) -> VersionSpec:
    return VersionSpec(
        model=model,
        version=row.version,
        backend="embedded" if row.backend == "embedded" else "remote",
        endpoints=tuple(EndpointSpec(e["url"], float(e.get("weight", 1.0))) for e in row.endpoints),
        upstream_model=row.upstream_model,
        api_key_name=row.api_key_name,
        sampling=SamplingDefaults(**row.sampling),
        price_prompt_per_1k=row.price_prompt_per_1k,
        price_completion_per_1k=row.price_completion_per_1k,
        price_per_compute_second=row.price_per_compute_second,
    )


def _rollout_spec(row: RolloutRow) -> RolloutSpec:
    return RolloutSpec(
        stable=row.stable,
        canary=row.canary,
        canary_percent=row.canary_percent,
        tenant_pins=dict(row.tenant_pins),
        shadows=tuple(ShadowSpec(s["version"], float(s["sample_rate"])) for s in row.shadows),
    )


class ModelRegistry:
    """Reads and changes the registry; every method is one transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def load(self) -> dict[str, ModelSpec]:
        """Every registered model with its versions and rollout, by name."""
        async with self._sessions() as session:
            models = (await session.scalars(select(RegisteredModelRow))).all()
            versions = (await session.scalars(select(ModelVersionRow))).all()
            rollouts = {r.model_id: r for r in (await session.scalars(select(RolloutRow))).all()}
        by_model: dict[str, dict[str, VersionSpec]] = {}
        names = {m.id: m.name for m in models}
        for row in versions:
            by_model.setdefault(row.model_id, {})[row.version] = _version_spec(
                names[row.model_id], row
            )
        specs: dict[str, ModelSpec] = {}
        for model in models:
            rollout = rollouts.get(model.id)
            if rollout is None:
                continue  # a model with no version yet serves nothing
            specs[model.name] = ModelSpec(
                name=model.name,
                versions=by_model.get(model.id, {}),
                rollout=_rollout_spec(rollout),
                tenants=None if model.tenants is None else frozenset(model.tenants),
                description=model.description,
            )
        return specs

    async def get(self, name: str) -> ModelSpec:
        """One model; ``NotFoundError`` when it is not registered or has no version yet."""
        spec = (await self.load()).get(name)
        if spec is None:
            raise NotFoundError(f"model {name!r} not found")
        return spec

    async def create_model(
        self, name: str, *, description: str = "", tenants: list[str] | None = None
    ) -> None:
        """Register a public model name (it serves nothing before its first version)."""
        row = RegisteredModelRow(name=_check_name(name), description=description, tenants=tenants)
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise ConflictError(f"model {name!r} already exists") from exc

    async def delete_model(self, name: str) -> None:
        async with self._sessions() as session, session.begin():
            row = await self._model(session, name)
            await session.delete(row)

    async def add_version(self, spec: VersionSpec) -> ModelSpec:
        """Register a version; the model's first version becomes its stable one."""
        spec = validate_version(spec)
        try:
            async with self._sessions() as session, session.begin():
                model = await self._model(session, spec.model)
                session.add(
                    ModelVersionRow(
                        model_id=model.id,
                        version=spec.version,
                        backend=spec.backend,
                        endpoints=[{"url": e.url, "weight": e.weight} for e in spec.endpoints],
                        upstream_model=spec.upstream_model,
                        api_key_name=spec.api_key_name,
                        sampling=_sampling_json(spec.sampling),
                        price_prompt_per_1k=spec.price_prompt_per_1k,
                        price_completion_per_1k=spec.price_completion_per_1k,
                        price_per_compute_second=spec.price_per_compute_second,
                    )
                )
                await session.flush()
                if await session.get(RolloutRow, model.id) is None:
                    session.add(
                        RolloutRow(
                            model_id=model.id,
                            stable=spec.version,
                            canary_percent=0.0,
                            tenant_pins={},
                            shadows=[],
                        )
                    )
        except IntegrityError as exc:
            raise ConflictError(
                f"version {spec.version!r} of {spec.model!r} already exists"
            ) from exc
        return await self.get(spec.model)

    async def delete_version(self, model: str, version: str) -> None:
        """Drop a version that no part of the rollout names."""
        async with self._sessions() as session, session.begin():
            row = await self._model(session, model)
            rollout = await session.get(RolloutRow, row.id)
            if rollout is not None and version in _named(_rollout_spec(rollout)):
                raise ConflictError(f"version {version!r} is in the rollout; change it first")
            result = await session.execute(
                delete(ModelVersionRow).where(
                    ModelVersionRow.model_id == row.id, ModelVersionRow.version == version
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFoundError(f"version {version!r} of {model!r} not found")

    async def set_rollout(self, model: str, rollout: RolloutSpec) -> ModelSpec:
        """Replace a model's rollout whole (stable, canary split, pins, shadows)."""
        await self._write_rollout(model, lambda _current: rollout)
        return await self.get(model)

    async def promote(self, model: str) -> ModelSpec:
        """The canary becomes the stable version and takes all traffic, in one call."""

        def promoted(current: RolloutRow) -> RolloutSpec:
            if current.canary is None:
                raise ConflictError(f"{model!r} has no canary to promote")
            spec = _rollout_spec(current)
            return replace(spec, stable=current.canary, canary=None, canary_percent=0.0)

        await self._write_rollout(model, promoted, remember_stable=True)
        return await self.get(model)

    async def rollback(self, model: str) -> ModelSpec:
        """Back to safety in one call: drop the canary, or undo the last promote."""

        def rolled_back(current: RolloutRow) -> RolloutSpec:
            spec = _rollout_spec(current)
            if current.canary is not None:
                return replace(spec, canary=None, canary_percent=0.0)
            if current.previous_stable is None:
                raise ConflictError(f"{model!r} has no canary and no earlier stable version")
            return replace(spec, stable=current.previous_stable)

        await self._write_rollout(model, rolled_back, forget_stable=True)
        return await self.get(model)

    async def _write_rollout(
        self,
        model: str,
        change: Any,
        *,
        remember_stable: bool = False,
        forget_stable: bool = False,
    ) -> None:
        async with self._sessions() as session, session.begin():
            row = await self._model(session, model)
            current = await session.get(RolloutRow, row.id, with_for_update=True)
            if current is None:
                raise ConflictError(f"{model!r} has no version yet")
            versions = set(
                (
                    await session.scalars(
                        select(ModelVersionRow.version).where(ModelVersionRow.model_id == row.id)
                    )
                ).all()
            )
            before = current.stable
            spec = _check_rollout(change(current), versions)
            if remember_stable:
                current.previous_stable = before
            elif forget_stable and current.canary is None:
                current.previous_stable = None
            current.stable = spec.stable
            current.canary = spec.canary
            current.canary_percent = spec.canary_percent
            current.tenant_pins = dict(spec.tenant_pins)
            current.shadows = [
                {"version": s.version, "sample_rate": s.sample_rate} for s in spec.shadows
            ]
            current.updated_at = utcnow()

    @staticmethod
    async def _model(session: AsyncSession, name: str) -> RegisteredModelRow:
        query = select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        row = await session.scalar(query)
        if row is None:
            raise NotFoundError(f"model {name!r} not found")
        return row


def _named(rollout: RolloutSpec) -> set[str]:
    names = {rollout.stable, *rollout.tenant_pins.values(), *(s.version for s in rollout.shadows)}
    if rollout.canary:
        names.add(rollout.canary)
    return names


def _sampling_json(s: SamplingDefaults) -> dict[str, Any]:
    return {
        "temperature": s.temperature,
        "max_tokens": s.max_tokens,
        "max_tokens_limit": s.max_tokens_limit,
        "context_tokens": s.context_tokens,
    }
