"""The models this node can serve right now: the node's default plus the registry.

The default comes from the settings: the embedded engine's model, or the servers of
``RAGSERVE_GENERATION_BACKEND_URLS``. The registry's models come from SQL, re-read
every ``refresh_s`` seconds; a registered model with the default's name replaces it.
Every change is handed to a listener (the router reconciles its endpoints), so a
rollout written on one node reaches all of them within seconds, with no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

from app.core.errors import ModelNotFoundError, UnavailableError
from app.routing.specs import (
    EMBEDDED_URL,
    EndpointSpec,
    ModelSpec,
    RolloutSpec,
    VersionSpec,
    served_id,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.core.settings import Settings
    from app.routing.registry import ModelRegistry
    from inference import Engine

__all__ = ["PACKAGED_MODEL", "ModelCatalog", "default_model"]

log = structlog.get_logger(__name__)

PACKAGED_MODEL = "smollm2-135m-instruct"
"""The public name of the packaged model, which ``ragserve inference`` nodes serve."""


def default_model(settings: Settings, engine: Engine | None) -> ModelSpec | None:
    """The node's own model from the settings, or ``None`` when it has none."""
    gen, routing = settings.generation, settings.routing
    if gen.backend_url_list:
        name = served_id(gen.model_name or gen.backend_model or PACKAGED_MODEL)
        version = VersionSpec(
            model=name,
            version="default",
            backend="remote",
            endpoints=tuple(EndpointSpec(url) for url in gen.backend_url_list),
            upstream_model=gen.backend_model,
            price_prompt_per_1k=routing.price_prompt_per_1k,
            price_completion_per_1k=routing.price_completion_per_1k,
        )
    elif engine is not None and engine.model_name:
        name = served_id(gen.model_name or engine.model_name)
        version = VersionSpec(
            model=name,
            version=engine.model_version or "embedded",
            backend="embedded",
            endpoints=(EndpointSpec(EMBEDDED_URL),),
            price_prompt_per_1k=routing.price_prompt_per_1k,
            price_completion_per_1k=routing.price_completion_per_1k,
            price_per_compute_second=routing.price_per_compute_second,
        )
    else:
        return None
    return ModelSpec(name, {version.version: version}, RolloutSpec(stable=version.version))


class ModelCatalog:
    """The current models by public name; ``require`` is the one model-name check."""

    def __init__(
        self,
        default: ModelSpec | None,
        registry: ModelRegistry | None = None,
        *,
        refresh_s: float = 2.0,
        default_name: str | None = None,
    ) -> None:
        self._default = default
        self._registry = registry
        self._refresh_s = refresh_s
        self._default_name = default_name
        self._models: dict[str, ModelSpec] = {} if default is None else {default.name: default}
        self._listeners: list[Callable[[dict[str, ModelSpec]], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = False

    def on_change(self, listener: Callable[[dict[str, ModelSpec]], Awaitable[None]]) -> None:
        """Call ``listener`` with every new set of models (and once at ``start``)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Read the registry and keep re-reading it in the background."""
        await self.refresh()
        if self._registry is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="model-registry-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """Re-read the registry now; tell the listeners when anything changed."""
        models = {} if self._default is None else {self._default.name: self._default}
        if self._registry is not None:
            models.update(await self._registry.load())
        changed = models != self._models
        self._models = models
        if changed or not self._started:
            self._started = True
            for listener in self._listeners:
                await listener(models)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # a database blip keeps the last good registry
                log.warning("model_registry_refresh_failed", error=repr(exc))

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self._models

    @property
    def default_name(self) -> str | None:
        """The model a request that names none gets."""
        if self._default_name is not None:
            return self._default_name
        if self._default is not None:
            return self._default.name
        if len(self._models) == 1:
            return next(iter(self._models))
        return None

    def visible_to(self, tenant_id: str | None) -> list[ModelSpec]:
        """The models ``tenant_id`` may use (every model for ``None``), by name."""
        return sorted(
            (m for m in self._models.values() if tenant_id is None or m.allows(tenant_id)),
            key=lambda m: m.name,
        )

    def require(self, requested: str | None, tenant_id: str | None = None) -> ModelSpec:
        """The model a request names (``None``: the default), if ``tenant_id`` may use it.

        Raises:
            UnavailableError: This node serves no model (503).
            ModelNotFoundError: No such model, or not for this tenant (404).
        """
        if not self._models:
            raise UnavailableError("Generation is not enabled on this node.")
        name = self.default_name if requested is None else served_id(requested)
        if name is None:
            raise ModelNotFoundError("(none: name a model, see GET /v1/models)")
        model = self._models.get(name)
        if model is None or (tenant_id is not None and not model.allows(tenant_id)):
            raise ModelNotFoundError(requested or name)
        return model
