"""``ragserve models``: the model registry from the command line.

Every command is one registry call (one transaction) and prints the model as JSON;
API nodes pick the change up within ``RAGSERVE_ROUTING_REFRESH_S`` seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from app.core.settings import get_settings
from app.routing.specs import EndpointSpec, ModelSpec, SamplingDefaults, ShadowSpec, VersionSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.routing.registry import ModelRegistry

__all__ = ["models"]


def _run(work: Callable[[ModelRegistry], Awaitable[Any]]) -> Any:
    from app.routing.registry import ModelRegistry
    from kernel.db import create_engine, session_factory
    from kernel.errors import DomainError

    async def go() -> Any:
        engine = create_engine(get_settings().database_url)
        try:
            return await work(ModelRegistry(session_factory(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc


def _echo(model: ModelSpec) -> None:
    data = dataclasses.asdict(model)
    data["tenants"] = None if model.tenants is None else sorted(model.tenants)
    click.echo(json.dumps(data, indent=2, default=str))


def _endpoint(raw: str) -> EndpointSpec:
    """``URL`` or ``URL=WEIGHT``."""
    url, _, weight = raw.partition("=")
    try:
        return EndpointSpec(url.rstrip("/"), float(weight) if weight else 1.0)
    except ValueError as exc:
        raise click.BadParameter(f"{raw!r}: the weight after '=' must be a number") from exc


@click.group()
def models() -> None:
    """Manage the model registry: models, versions, canary, shadows, pins."""


@models.command("list")
def list_models() -> None:
    """Print every registered model as JSON."""
    found = _run(lambda registry: registry.load())
    for model in sorted(found.values(), key=lambda m: m.name):
        _echo(model)


@models.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--tenant", "tenants", multiple=True, help="A tenant id allowed (default: all).")
def create(name: str, description: str, tenants: tuple[str, ...]) -> None:
    """Register a public model name (it serves once it has a version)."""
    _run(lambda r: r.create_model(name, description=description, tenants=list(tenants) or None))
    click.echo(f"model {name!r} created; add a version with `ragserve models add-version`")


@models.command("add-version")
@click.argument("model")
@click.argument("version")
@click.option("--backend", type=click.Choice(["remote", "embedded"]), default="remote")
@click.option("--endpoint", "endpoints", multiple=True, help="Base URL, or URL=WEIGHT.")
@click.option("--upstream-model", default=None, help="Model name sent to the servers.")
@click.option("--api-key-name", default=None, help="Entry of RAGSERVE_ROUTING_API_KEYS.")
@click.option("--price-prompt", type=float, default=0.0, help="Per 1,000 prompt tokens.")
@click.option("--price-completion", type=float, default=0.0, help="Per 1,000 completion tokens.")
@click.option("--price-compute-second", type=float, default=0.0, help="Per generation second.")
@click.option("--temperature", type=float, default=None)
@click.option("--max-tokens", type=int, default=None)
@click.option("--max-tokens-limit", type=int, default=None)
def add_version(
    model: str,
    version: str,
    backend: str,
    endpoints: tuple[str, ...],
    upstream_model: str | None,
    api_key_name: str | None,
    price_prompt: float,
    price_completion: float,
    price_compute_second: float,
    temperature: float | None,
    max_tokens: int | None,
    max_tokens_limit: int | None,
) -> None:
    """Register a version; a model's first version becomes its stable one."""
    spec = VersionSpec(
        model=model,
        version=version,
        backend="embedded" if backend == "embedded" else "remote",
        endpoints=tuple(_endpoint(e) for e in endpoints),
        upstream_model=upstream_model,
        api_key_name=api_key_name,
        sampling=SamplingDefaults(temperature, max_tokens, max_tokens_limit),
        price_prompt_per_1k=price_prompt,
        price_completion_per_1k=price_completion,
        price_per_compute_second=price_compute_second,
    )
    _echo(_run(lambda registry: registry.add_version(spec)))


@models.command("split")
@click.argument("model")
@click.option("--stable", default=None, help="The stable version (default: unchanged).")
@click.option("--canary", default=None, help="The canary version; omit to remove it.")
@click.option("--percent", type=float, default=0.0, help="Canary share of conversations.")
def split(model: str, stable: str | None, canary: str | None, percent: float) -> None:
    """Set the canary and its share (pins and shadows are kept)."""

    async def work(registry: ModelRegistry) -> ModelSpec:
        rollout = (await registry.get(model)).rollout
        changed = replace(
            rollout,
            stable=stable or rollout.stable,
            canary=canary,
            canary_percent=percent if canary else 0.0,
        )
        return await registry.set_rollout(model, changed)

    _echo(_run(work))


@models.command("shadow")
@click.argument("model")
@click.argument("version")
@click.option("--rate", type=float, default=0.1, show_default=True, help="Share of turns copied.")
@click.option("--remove", is_flag=True, help="Stop shadowing this version.")
def shadow(model: str, version: str, rate: float, remove: bool) -> None:
    """Send a sampled copy of live turns to VERSION, off the user's path."""

    async def work(registry: ModelRegistry) -> ModelSpec:
        rollout = (await registry.get(model)).rollout
        kept = tuple(s for s in rollout.shadows if s.version != version)
        shadows = kept if remove else (*kept, ShadowSpec(version, rate))
        return await registry.set_rollout(model, replace(rollout, shadows=shadows))

    _echo(_run(work))


@models.command("pin")
@click.argument("model")
@click.option("--tenant", required=True, help="Tenant id.")
@click.option("--version", default=None, help="Version for the tenant; omit to unpin.")
def pin(model: str, tenant: str, version: str | None) -> None:
    """Send every turn of a tenant to one version (A/B by tenant)."""

    async def work(registry: ModelRegistry) -> ModelSpec:
        rollout = (await registry.get(model)).rollout
        pins = {t: v for t, v in rollout.tenant_pins.items() if t != tenant}
        if version is not None:
            pins[tenant] = version
        return await registry.set_rollout(model, replace(rollout, tenant_pins=pins))

    _echo(_run(work))


@models.command("promote")
@click.argument("model")
def promote(model: str) -> None:
    """The canary becomes stable and takes all traffic."""
    _echo(_run(lambda registry: registry.promote(model)))


@models.command("rollback")
@click.argument("model")
def rollback(model: str) -> None:
    """Drop the canary, or, without one, undo the last promote."""
    _echo(_run(lambda registry: registry.rollback(model)))
