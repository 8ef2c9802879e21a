"""REST: ``/v1/labeling``, the labelers' queue and the labels' export.

Every route needs the labeler role or a higher one (403 otherwise) and works inside
the caller's tenant: another tenant's task is a 404 like a missing one. The caller's
principal subject (``key:<id>``, ``user:<sub>``) is the labeler: the one who holds
a lease, and whose label counts once toward a task's overlap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.auth.guards import labeler_guard
from app.auth.principal import Principal
from app.core.settings import Settings
from app.entrypoints.rest.labeling.schemas import (
    LabelIn,
    LabelOut,
    NextTask,
    NextTaskIn,
    TaskDetail,
    TaskList,
    TaskOut,
)
from app.entrypoints.schemas import LABEL_PATTERN
from conversation import LabelingQueue, LabelingSource, TaskFilters


def _text_filter() -> Any:
    """A collection or model version to filter by (a query parameter)."""
    return Parameter(default=None, min_length=1, max_length=128, pattern=LABEL_PATTERN)


class LabelingController(Controller):
    path = "/v1/labeling"
    tags = ["labeling"]
    guards = [labeler_guard]

    @get("/tasks")
    async def list_tasks(
        self,
        labeling: LabelingQueue,
        principal: Principal,
        source: LabelingSource | None = None,
        collection: str | None = _text_filter(),
        model_version: str | None = _text_filter(),
        since: datetime | None = None,
        until: datetime | None = None,
        status: Literal["open", "done", "all"] = "open",
        limit: int = Parameter(default=50, ge=1, le=500),
        offset: int = Parameter(default=0, ge=0, le=1_000_000),
    ) -> TaskList:
        """The tenant's tasks in queue order (highest priority, then oldest first),
        filtered by source, collection, model version, the time they were opened
        (``since`` included, ``until`` excluded) and status (``all`` for both)."""
        filters = TaskFilters(
            source, collection, model_version, since, until, None if status == "all" else status
        )
        tasks = await labeling.list_tasks(principal.tenant_id, filters, limit=limit, offset=offset)
        total = await labeling.count_tasks(principal.tenant_id, filters)
        return TaskList(
            items=[TaskOut.of(t) for t in tasks], total=total, limit=limit, offset=offset
        )

    @post("/tasks/next", status_code=HTTP_200_OK)
    async def next_task(
        self,
        labeling: LabelingQueue,
        settings: Settings,
        principal: Principal,
        data: NextTaskIn | None = None,
    ) -> NextTask:
        """Lease the caller a task for ``RAGSERVE_LABELING_LEASE_S``: the one they hold,
        else the highest-priority open task nobody holds that they have neither
        labelled nor skipped (never one another labeler holds)."""
        filters = (data or NextTaskIn()).to_filters()
        task = await labeling.claim_next(
            principal.tenant_id,
            principal.subject,
            lease_s=settings.labeling.lease_s,
            filters=filters,
        )
        if task is None:
            return NextTask(task=None)
        return NextTask(task=TaskDetail.of(await labeling.task_context(task.tenant_id, task.id)))

    @get("/tasks/{task_id:str}")
    async def read(self, labeling: LabelingQueue, principal: Principal, task_id: str) -> TaskDetail:
        """One task with what a labeler reviews (leases nothing)."""
        return TaskDetail.of(await labeling.task_context(principal.tenant_id, task_id))

    @post("/tasks/{task_id:str}/labels", status_code=HTTP_201_CREATED)
    async def label(
        self, labeling: LabelingQueue, principal: Principal, task_id: str, data: LabelIn
    ) -> LabelOut:
        """Label the task (and end the caller's lease on it). One label per labeler; a
        task takes ``labels_wanted`` of them, then is done: a label past that is a 409
        ``task_complete``, a second one by the same labeler ``already_labelled``."""
        label = await labeling.submit(
            principal.tenant_id, task_id, principal.subject, data.to_input()
        )
        return LabelOut.of(label)

    @post("/tasks/{task_id:str}/skip", status_code=HTTP_204_NO_CONTENT)
    async def skip(self, labeling: LabelingQueue, principal: Principal, task_id: str) -> None:
        """Give the task back; "next" will not hand it to the caller again."""
        await labeling.skip(principal.tenant_id, task_id, principal.subject)

    @get("/export", media_type="application/x-ndjson")
    async def export(
        self,
        labeling: LabelingQueue,
        principal: Principal,
        fmt: Literal["sft", "preference"] = Parameter(query="format", default="sft"),
        source: LabelingSource | None = None,
        collection: str | None = _text_filter(),
        model_version: str | None = _text_filter(),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Stream:
        """The tenant's labels with a corrected answer as JSONL, streamed as they are
        read: ``sft`` (chat messages with the sources in the system prompt and the
        corrected answer) or ``preference`` (the prompt, the correction as
        ``chosen``, the original answer as ``rejected``); each line carries the
        sources, the model version and the label. ``since`` and ``until`` bound
        when the labels were made."""
        filters = TaskFilters(source, collection, model_version, since, until, status=None)
        lines = labeling.export(principal.tenant_id, fmt=fmt, filters=filters)
        return Stream(lines, media_type="application/x-ndjson")
