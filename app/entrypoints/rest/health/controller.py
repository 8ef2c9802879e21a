"""Liveness and readiness probes, and the Prometheus scrape.

``/healthz`` and ``/readyz``'s status are public (load balancers and orchestrators
probe them without credentials); ``/metrics`` and the per-check detail of
``/readyz`` need ``RAGSERVE_AUTH_OPS_TOKEN`` as a bearer token unless
``RAGSERVE_AUTH_OPS_PUBLIC`` is set. They are checked without a database lookup.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.core.errors import UnauthorizedError
from app.core.readiness import Readiness
from app.core.settings import Settings
from app.server.drain import Drain

__all__ = ["HealthController", "metrics"]


class HealthController(Controller):
    tags = ["health"]

    @get("/healthz", exclude_from_auth=True)
    async def healthz(self) -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @get("/readyz", exclude_from_auth=True)
    async def readyz(
        self,
        request: Request[Any, Any, Any],
        readiness: Readiness,
        settings: Settings,
        drain: Drain,
    ) -> Response[dict[str, Any]]:
        """Every dependency answers and the model is loaded; 503 otherwise.

        With the ops token, ``checks`` names each check's outcome (``ok``,
        ``failed``, ``timeout``); the failure's detail is only in the log. A
        draining process (SIGTERM) is not ready, whatever its dependencies say.
        Redis not answering leaves the node ready, with status ``degraded``.
        """
        if drain.draining:
            return Response({"status": "draining"}, status_code=503)
        report = await readiness.check()
        status = "degraded" if report.degraded else "ready"
        body: dict[str, Any] = {"status": status if report.ready else "unavailable"}
        if settings.auth.ops_allowed(request.headers.get("authorization")):
            body["checks"] = report.checks
        return Response(body, status_code=200 if report.ready else 503)


@get("/metrics", exclude_from_auth=True, include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], settings: Settings) -> Response[bytes]:
    """Every metric in Prometheus' text format (with the ops token)."""
    if not settings.auth.ops_allowed(request.headers.get("authorization")):
        raise UnauthorizedError("/metrics needs 'Authorization: Bearer <RAGSERVE_AUTH_OPS_TOKEN>'.")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
