"""REST: ``/v1/admin/models``, the model registry and its rollouts, and usage.

The registry is shared by every tenant, so changing it needs a platform admin (403
otherwise). A change is read back at once on the node that made it and within
``RAGSERVE_ROUTING_REFRESH_S`` seconds on every other node. Usage is per tenant:
an admin reads its own tenant's, a platform admin any tenant's.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Controller, delete, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.auth.guards import admin_guard, is_platform_admin, platform_admin_guard
from app.auth.principal import Principal
from app.core.errors import BadRequestError, ResourceNotFoundError, UnprocessableError
from app.entrypoints.rest.models.schemas import (
    ModelCreate,
    ModelOut,
    ModelOutList,
    RolloutUpdate,
    RoutingHealth,
    ShadowSummary,
    UsageReport,
    VersionCreate,
)
from app.routing.catalog import ModelCatalog
from app.routing.registry import ModelRegistry
from app.routing.router import Router
from app.routing.shadow import ShadowStore
from app.routing.usage import UsageLedger

_DAY = timedelta(days=1)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _moment(name: str) -> Any:
    """A ``since``/``until`` query parameter: an RFC 3339 date-time, as the schema says.

    NOTE: a string, not a ``datetime``: Litestar would take ``0.5`` for a Unix time.
    """
    return Parameter(
        query=name,
        default=None,
        min_length=20,
        max_length=64,
        schema_extra={"format": "date-time"},
        description="An RFC 3339 date-time with its offset.",
    )


def _window(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """``[since, until)`` in UTC; the last day by default."""
    end = _utc("until", until) if until is not None else datetime.now(UTC)
    start = _utc("since", since) if since is not None else end - _DAY
    if start >= end:
        raise UnprocessableError("since must be before until.")
    return start, end


def _utc(name: str, value: str) -> datetime:
    try:
        if not _RFC3339.match(value):
            raise ValueError(value)
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except ValueError:
        raise BadRequestError(
            f"{name} is not an RFC 3339 date-time (2026-01-31T12:00:00Z)."
        ) from None


class ModelsController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_guard]

    @get("/models")
    async def list_models(self, catalog: ModelCatalog, registry: ModelRegistry) -> ModelOutList:
        """Every model this node serves: the registry's and the node's own default."""
        registered = await registry.load()
        return ModelOutList(
            items=[
                ModelOut.of(m, registered=m.name in registered) for m in catalog.visible_to(None)
            ]
        )

    @post("/models", status_code=HTTP_201_CREATED, guards=[platform_admin_guard])
    async def create_model(self, registry: ModelRegistry, data: ModelCreate) -> ModelCreate:
        """Register a public model name; it serves once it has a version."""
        await registry.create_model(
            data.name, description=data.description, tenants=data.allowed_tenants
        )
        return data

    @get("/models/{name:str}")
    async def get_model(self, catalog: ModelCatalog, name: str) -> ModelOut:
        model = catalog.models.get(name)
        if model is None:
            raise ResourceNotFoundError(f"model {name!r} not found")
        return ModelOut.of(model)

    @delete("/models/{name:str}", status_code=HTTP_204_NO_CONTENT, guards=[platform_admin_guard])
    async def delete_model(self, registry: ModelRegistry, catalog: ModelCatalog, name: str) -> None:
        await registry.delete_model(name)
        await catalog.refresh()

    @post(
        "/models/{name:str}/versions", status_code=HTTP_201_CREATED, guards=[platform_admin_guard]
    )
    async def add_version(
        self, registry: ModelRegistry, catalog: ModelCatalog, name: str, data: VersionCreate
    ) -> ModelOut:
        """Register a version (the model's first one becomes its stable version)."""
        model = await registry.add_version(data.to_spec(name))
        await catalog.refresh()
        return ModelOut.of(model)

    @delete(
        "/models/{name:str}/versions/{version:str}",
        status_code=HTTP_204_NO_CONTENT,
        guards=[platform_admin_guard],
    )
    async def delete_version(
        self, registry: ModelRegistry, catalog: ModelCatalog, name: str, version: str
    ) -> None:
        """Drop a version no part of the rollout uses (409 otherwise)."""
        await registry.delete_version(name, version)
        await catalog.refresh()

    @put("/models/{name:str}/rollout", guards=[platform_admin_guard])
    async def set_rollout(
        self, registry: ModelRegistry, catalog: ModelCatalog, name: str, data: RolloutUpdate
    ) -> ModelOut:
        """Set the whole split: stable, canary and its percentage, tenant pins, shadows."""
        model = await registry.set_rollout(name, data.to_spec())
        await catalog.refresh()
        return ModelOut.of(model)

    @post("/models/{name:str}/promote", status_code=200, guards=[platform_admin_guard])
    async def promote(self, registry: ModelRegistry, catalog: ModelCatalog, name: str) -> ModelOut:
        """The canary becomes stable and takes all traffic."""
        model = await registry.promote(name)
        await catalog.refresh()
        return ModelOut.of(model)

    @post("/models/{name:str}/rollback", status_code=200, guards=[platform_admin_guard])
    async def rollback(self, registry: ModelRegistry, catalog: ModelCatalog, name: str) -> ModelOut:
        """Drop the canary, or, without one, undo the last promote."""
        model = await registry.rollback(name)
        await catalog.refresh()
        return ModelOut.of(model)

    @get("/models/{name:str}/shadows/{version:str}/summary", guards=[platform_admin_guard])
    async def shadow_summary(
        self,
        shadow_store: ShadowStore,
        name: str,
        version: str,
        since: str | None = _moment("since"),
        until: str | None = _moment("until"),
    ) -> ShadowSummary:
        """A shadow version against the answers users were shown, over ``[since, until)``."""
        start, end = _window(since, until)
        return ShadowSummary(**await shadow_store.summary(name, version, start, end))

    @get("/routing", guards=[platform_admin_guard])
    async def routing(self, router: Router) -> RoutingHealth:
        """Every endpoint the router balances, with its health and load."""
        return RoutingHealth(
            endpoints=[
                {"version": key, **asdict(status)}
                for key, statuses in router.snapshot().items()
                for status in statuses
            ]
        )

    @get("/tenants/{tenant_id:str}/usage")
    async def usage(
        self,
        ledger: UsageLedger,
        principal: Principal,
        tenant_id: str,
        since: str | None = _moment("since"),
        until: str | None = _moment("until"),
    ) -> UsageReport:
        """Turns, tokens and cost of a tenant over ``[since, until)``, by model version."""
        if tenant_id != principal.tenant_id and not is_platform_admin(principal):
            raise ResourceNotFoundError("tenant not found")
        start, end = _window(since, until)
        return UsageReport(**await ledger.summary(tenant_id, start, end))
