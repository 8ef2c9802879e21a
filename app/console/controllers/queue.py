"""The labeler's queue: the open tasks, filtered; "next task"; the labels' export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Stream, Template

from app.console.filters import filters_from, filters_query
from app.console.security import console_guard, console_session
from app.console.sessions import ConsoleSession
from app.core.settings import Settings
from conversation import LabelingQueue
from kernel.errors import InvalidInputError

__all__ = ["QueueController"]

PAGE_SIZE = 50


async def open_next(
    session: ConsoleSession, labeling: LabelingQueue, settings: Settings, params: dict[str, Any]
) -> Redirect:
    """Lease the labeler the next task under the filters in ``params`` and open it
    (keeping the filters for the task after it); back to the queue when none is left."""
    task = await labeling.claim_next(
        session.tenant_id,
        session.labeler,
        lease_s=settings.labeling.lease_s,
        filters=filters_from(params),
    )
    if task is None:
        return Redirect(f"/admin/queue?{filters_query(params, empty='1')}", status_code=303)
    query = filters_query(params)
    return Redirect(f"/admin/tasks/{task.id}" + (f"?{query}" if query else ""), status_code=303)


class QueueController(Controller):
    path = "/"
    guards = [console_guard("labeler")]

    @get("/", status_code=303)
    async def home(self) -> Redirect:
        return Redirect("/admin/queue", status_code=303)

    @get("/queue")
    async def queue(
        self,
        request: Request[Any, Any, Any],
        labeling: LabelingQueue,
        page: int = Parameter(default=1, ge=1, le=10_000),
    ) -> Template:
        """The tenant's tasks, highest priority first, with the filters' choices."""
        session = console_session(request)
        params = dict(request.query_params)
        filters = filters_from(params)
        tenant = session.tenant_id
        tasks = await labeling.list_tasks(
            tenant, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        total = await labeling.count_tasks(tenant, filters)
        return Template(
            "console/queue.html",
            context={
                "console": session,
                "section": "queue",
                "tasks": tasks,
                "now": datetime.now(UTC),
                "total": total,
                "page": page,
                "pages": max(1, -(-total // PAGE_SIZE)),
                "filters": params,
                "facets": await labeling.facets(tenant),
                "query": filters_query(params),
                "flash": "No task is waiting for you under these filters."
                if params.get("empty")
                else None,
            },
        )

    @post("/tasks/next", status_code=303)
    async def next_task(
        self, request: Request[Any, Any, Any], labeling: LabelingQueue, settings: Settings
    ) -> Redirect:
        """Lease the highest-priority task nobody holds and open it."""
        form = dict(await request.form())
        return await open_next(console_session(request), labeling, settings, form)

    @get("/export")
    async def export_form(
        self, request: Request[Any, Any, Any], labeling: LabelingQueue
    ) -> Template:
        """Choose a format and filters for a JSONL download."""
        session = console_session(request)
        return Template(
            "console/export.html",
            context={
                "console": session,
                "section": "export",
                "facets": await labeling.facets(session.tenant_id),
            },
        )

    @get("/export/labels.jsonl")
    async def export(
        self,
        request: Request[Any, Any, Any],
        labeling: LabelingQueue,
        format_: str = Parameter(query="format", default="sft"),
    ) -> Stream:
        """The tenant's labels as JSONL, streamed as they are read."""
        session = console_session(request)
        if format_ not in ("sft", "preference"):
            raise InvalidInputError("format is sft or preference.")
        params = {"status": "all", **dict(request.query_params)}
        lines = labeling.export(
            session.tenant_id,
            fmt=format_,  # type: ignore[arg-type]
            filters=filters_from(params),
        )
        return Stream(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="labels-{format_}.jsonl"'},
        )
