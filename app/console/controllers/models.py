"""The platform admin's model pages: versions, the rollout split, promote and
roll back, and how each shadow version compares with the answers shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from app.console.security import console_guard, console_session
from app.routing.catalog import ModelCatalog
from app.routing.registry import ModelRegistry
from app.routing.shadow import ShadowStore
from kernel.errors import InvalidInputError

__all__ = ["ModelsPageController"]

_SHADOW_WINDOW = timedelta(days=1)


def _percent(value: Any) -> float:
    try:
        percent = float(str(value))
    except ValueError:
        raise InvalidInputError("The canary share is a number from 0 to 100.") from None
    if not 0 <= percent <= 100:
        raise InvalidInputError("The canary share is a number from 0 to 100.")
    return percent


class ModelsPageController(Controller):
    path = "/models"
    guards = [console_guard("platform")]

    @get("/")
    async def models(
        self, request: Request[Any, Any, Any], registry: ModelRegistry, shadow_store: ShadowStore
    ) -> Template:
        """Every registered model with its versions, split and shadows' last day."""
        until = datetime.now(UTC)
        models = sorted((await registry.load()).values(), key=lambda m: m.name)
        shadows = {
            (model.name, shadow.version): await shadow_store.summary(
                model.name, shadow.version, until - _SHADOW_WINDOW, until
            )
            for model in models
            for shadow in model.rollout.shadows
        }
        return Template(
            "console/models.html",
            context={
                "console": console_session(request),
                "section": "models",
                "models": models,
                "shadows": shadows,
            },
        )

    @post("/{name:str}/rollout", status_code=303)
    async def set_rollout(
        self,
        request: Request[Any, Any, Any],
        registry: ModelRegistry,
        catalog: ModelCatalog,
        name: str,
    ) -> Redirect:
        """Set the stable version and the canary's share (pins and shadows are kept)."""
        form = await request.form()
        model = await registry.get(name)
        canary = str(form.get("canary") or "") or None
        percent = _percent(form.get("canary_percent") or 0)
        rollout = replace(
            model.rollout,
            stable=str(form.get("stable") or model.rollout.stable),
            canary=canary,
            canary_percent=percent if canary else 0.0,
        )
        await registry.set_rollout(name, rollout)
        await catalog.refresh()
        return Redirect("/admin/models", status_code=303)

    @post("/{name:str}/{action:str}", status_code=303)
    async def promote_or_rollback(
        self, registry: ModelRegistry, catalog: ModelCatalog, name: str, action: str
    ) -> Redirect:
        """``promote``: the canary becomes stable; ``rollback``: drop the canary, or
        undo the last promote."""
        if action == "promote":
            await registry.promote(name)
        elif action == "rollback":
            await registry.rollback(name)
        else:
            raise InvalidInputError("The action is promote or rollback.")
        await catalog.refresh()
        return Redirect("/admin/models", status_code=303)
