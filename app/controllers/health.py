"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Response, get

from app.services import Services
from conversation import check_health


class HealthController(Controller):
    tags = ["health"]

    @get("/healthz", exclude_from_auth=True)
    async def healthz(self) -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @get("/readyz", exclude_from_auth=True)
    async def readyz(self, services: Services) -> Response[dict[str, Any]]:
        """Every dependency answers and the model is loaded; 503 otherwise."""
        checks: dict[str, str] = {}

        async def probe(name: str, check: Any) -> None:
            try:
                await asyncio.wait_for(check(), timeout=5)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"error: {exc.__class__.__name__}: {exc}"

        await probe("database", lambda: check_health(services.db))
        await probe("vector_store", services.retrieval.check_health)
        if services.engine is not None:
            await probe("engine", services.engine.check_health)
        if services.redis is not None:
            redis = services.redis
            await probe("redis", lambda: redis.ping())
        ready = all(v == "ok" for v in checks.values())
        return Response(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )
