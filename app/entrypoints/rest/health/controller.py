"""Liveness and readiness probes, and the Prometheus scrape."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.core.readiness import Readiness

__all__ = ["HealthController", "metrics"]


class HealthController(Controller):
    tags = ["health"]

    @get("/healthz", exclude_from_auth=True)
    async def healthz(self) -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @get("/readyz", exclude_from_auth=True)
    async def readyz(self, readiness: Readiness) -> Response[dict[str, Any]]:
        """Every dependency answers and the model is loaded; 503 otherwise."""
        report = await readiness.check()
        return Response(
            {"status": "ready" if report.ready else "unavailable", "checks": report.checks},
            status_code=200 if report.ready else 503,
        )


@get("/metrics", exclude_from_auth=True, include_in_schema=False)
async def metrics() -> Response[bytes]:
    """Every metric in Prometheus' text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
