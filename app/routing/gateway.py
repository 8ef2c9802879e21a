"""The generation side of a turn: which model and version answer, through which
endpoint, what it cost, and which shadow versions get a copy.

The turn pipeline talks to this one object; it composes the catalog (what is
served), the rollout rules (which version), the router (which endpoint, retries,
health), the shadow runner and the usage ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.routing.rollout import Arm, choose, shadows_for
from app.routing.shadow import PrimaryResult, ShadowJob
from app.routing.specs import ModelSpec, VersionSpec
from inference import EngineUnavailableError, GenerationRequest, Priority

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncGenerator, Sequence

    from app.chat.prompt import Source
    from app.routing.catalog import ModelCatalog
    from app.routing.router import Router
    from app.routing.shadow import ShadowRunner
    from app.routing.usage import UsageLedger
    from inference import GenerationEvent

__all__ = ["ModelGateway", "Route", "check_serving"]


async def check_serving(catalog: ModelCatalog, router: Router) -> None:
    """Raise ``EngineUnavailableError`` when a model's stable version has no healthy
    endpoint (for ``/readyz``: a canary or shadow going down does not unready a node)."""
    for model in catalog.models.values():
        stable = model.versions.get(model.rollout.stable)
        if stable is None or stable.backend != "remote":
            continue
        if not any(status.healthy for status in router.health(stable)):
            raise EngineUnavailableError(f"no healthy endpoint serves {stable.key}")


@dataclass(frozen=True, slots=True)
class Route:
    """The model and version chosen for one turn."""

    model: ModelSpec
    version: VersionSpec
    arm: Arm


class ModelGateway:
    """Chooses, runs and accounts for the generation of every turn on this node."""

    def __init__(
        self,
        catalog: ModelCatalog,
        router: Router,
        ledger: UsageLedger,
        *,
        shadows: ShadowRunner | None = None,
    ) -> None:
        self.catalog = catalog
        self.router = router
        self._ledger = ledger
        self._shadows = shadows

    def require(self, requested: str | None, tenant_id: str | None = None) -> ModelSpec:
        """The model a request names, if served here for ``tenant_id`` (404/503 else)."""
        return self.catalog.require(requested, tenant_id)

    def route(
        self,
        model: ModelSpec,
        *,
        tenant_id: str,
        conversation_key: str | None,
        previous_version: str | None,
    ) -> Route:
        """The version answering this turn (see ``app/routing/rollout.py``)."""
        choice = choose(
            model,
            tenant_id=tenant_id,
            conversation_id=conversation_key,
            previous_version=previous_version,
        )
        return Route(model, choice.version, choice.arm)

    def check_capacity(self, route: Route, priority: Priority = Priority.ONLINE) -> None:
        """Raise ``EngineOverloadedError`` when the version would refuse a turn now."""
        self.router.check_capacity(route.version, priority)

    def count_tokens(self, route: Route, text: str) -> int:
        """Tokens of ``text`` for prompt budgets (exact on the embedded engine, a
        conservative estimate for remote servers)."""
        return self.router.count_tokens(route.version, text)

    def generate(
        self, route: Route, request: GenerationRequest, *, affinity_key: str | None
    ) -> AsyncGenerator[GenerationEvent, None]:
        return self.router.generate(route.version, request, affinity_key=affinity_key)

    async def abort(self, request_id: str) -> None:
        await self.router.abort(request_id)

    def start_shadows(
        self,
        route: Route,
        request: GenerationRequest,
        *,
        conversation_id: str,
        sources: Sequence[Source],
    ) -> list[asyncio.Future[PrimaryResult]]:
        """Send a copy of this turn to the sampled shadow versions; the returned
        futures take the primary's answer when it is known."""
        if self._shadows is None:
            return []
        futures: list[asyncio.Future[PrimaryResult]] = []
        for version in shadows_for(route.model, request.request_id, route.version.version):
            copy = GenerationRequest(
                request_id=f"{request.request_id}~shadow~{version.version}",
                prompt_token_ids=list(request.prompt_token_ids),
                sampling=request.sampling,
                tenant_id=request.tenant_id,
                deadline=request.deadline,
                messages=request.messages,
                priority=request.priority,
            )
            job = ShadowJob(
                tenant_id=request.tenant_id,
                conversation_id=conversation_id,
                message_id=request.request_id,
                version=version,
                primary_version=route.version.version,
                request=copy,
                sources=list(sources),
                affinity_key=conversation_id,
            )
            if self._shadows.submit(job):
                futures.append(job.primary)
        return futures

    async def join_shadows(self) -> None:
        """Wait until every queued shadow copy is done (tests; a drain)."""
        if self._shadows is not None:
            await self._shadows.join()

    async def record_usage(
        self,
        route: Route,
        *,
        message_id: str,
        tenant_id: str,
        prompt_tokens: int,
        completion_tokens: int,
        compute_seconds: float,
    ) -> float:
        """Store and export what the answer used; its cost."""
        return await self._ledger.record(
            message_id=message_id,
            tenant_id=tenant_id,
            version=route.version,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            compute_seconds=compute_seconds if route.version.backend == "embedded" else 0.0,
        )
