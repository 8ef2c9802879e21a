"""The admin's live metrics: the last hour drawn as SVG on the server, the charts
refreshed by the page's script every sampling interval without a reload."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.response import Template
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.console.charts import bar_chart, line_chart
from app.console.metrics_history import PANELS, MetricsHistory
from app.console.security import console_guard, console_session
from app.console.tenant_costs import cost_per_tenant
from conversation import TenantService

__all__ = ["MetricsController"]


async def _charts(
    history: MetricsHistory,
    db_sessions: async_sessionmaker[AsyncSession],
    tenants: TenantService,
) -> list[str]:
    now = time.time()
    snapshot = history.snapshot()
    charts = [
        line_chart(
            snapshot.get(panel.key, {}),
            title=panel.title,
            unit=panel.unit,
            window_s=history.window_s,
            now=now,
        )
        for panel in PANELS
    ]
    charts.append(
        bar_chart(history.verdicts_by_category(), title="Safety verdicts, last hour", unit="")
    )
    costs = await cost_per_tenant(
        db_sessions,
        since=datetime.now(UTC) - timedelta(seconds=history.window_s),
        names={t.id: t.name for t in await tenants.list()},
    )
    charts.append(bar_chart(costs, title="Cost per tenant, last hour", unit=""))
    return charts


class MetricsController(Controller):
    path = "/metrics"
    # NOTE: the charts are this node's traffic, every tenant's together: a tenant's
    # admin must not see what other tenants do, so the page is the operators'.
    guards = [console_guard("platform")]

    @get("/")
    async def page(
        self,
        request: Request[Any, Any, Any],
        metrics_history: MetricsHistory,
        db_sessions: async_sessionmaker[AsyncSession],
        tenants: TenantService,
    ) -> Template:
        """The metrics page; its charts refresh themselves."""
        session = console_session(request)
        charts = await _charts(metrics_history, db_sessions, tenants)
        return Template(
            "console/metrics.html",
            context={
                "console": session,
                "section": "metrics",
                # NOTE: charts.py escapes every text it draws; the SVG is markup.
                "charts": [Markup(chart) for chart in charts],  # noqa: S704
                "refresh_ms": int(metrics_history.interval_s * 1000),
            },
        )

    @get("/charts")
    async def charts(
        self,
        request: Request[Any, Any, Any],
        metrics_history: MetricsHistory,
        db_sessions: async_sessionmaker[AsyncSession],
        tenants: TenantService,
    ) -> Response[str]:
        """The charts alone, as the page's script swaps them in."""
        charts = await _charts(metrics_history, db_sessions, tenants)
        body = "".join(f'<figure class="chart-box">{chart}</figure>' for chart in charts)
        return Response(body, media_type=MediaType.HTML)
