"""One task: its page (leased to whoever opens it), its lease, its label, a skip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from app.console.controllers.queue import open_next
from app.console.filters import filters_query
from app.console.security import console_guard, console_session
from app.console.task_view import CATEGORIES, source_views, verdict_rows
from app.core.settings import Settings
from conversation import LabelingQueue, LabelingTask, LabelInput, TaskLeasedError
from kernel.errors import InvalidInputError
from safety.audit import VerdictStore

__all__ = ["TaskController"]


def _holder(task: LabelingTask) -> str | None:
    """Who holds a live lease on the task, if anyone."""
    if task.lease_owner and task.lease_until and task.lease_until > datetime.now(UTC):
        return task.lease_owner
    return None


class TaskController(Controller):
    path = "/tasks"
    guards = [console_guard("labeler")]

    @get("/{task_id:str}")
    async def task(
        self,
        request: Request[Any, Any, Any],
        labeling: LabelingQueue,
        console_verdicts: VerdictStore,
        settings: Settings,
        task_id: str,
    ) -> Template:
        """The task, leased to this labeler when nobody else holds it."""
        session = console_session(request)
        tenant = session.tenant_id
        task = await labeling.get(tenant, task_id)
        labels = await labeling.labels(tenant, task_id)
        mine_done = any(label.labeler == session.labeler for label in labels)
        if task.status == "open" and not mine_done and _holder(task) in (None, session.labeler):
            try:
                task = await labeling.claim(
                    tenant, task_id, session.labeler, lease_s=settings.labeling.lease_s
                )
            except TaskLeasedError:
                task = await labeling.get(tenant, task_id)
        context = await labeling.task_context(tenant, task_id)
        answer = context.answer
        verdicts = []
        for message in context.messages[-2:]:
            verdicts.extend(await console_verdicts.for_message(tenant, message.id))
        return Template(
            "console/task.html",
            context={
                "console": session,
                "section": "queue",
                "task": task,
                "holder": _holder(task),
                "mine": _holder(task) == session.labeler,
                "mine_done": mine_done,
                "messages": context.messages,
                "answer": answer,
                "sources": source_views(answer.sources, answer.citations) if answer else [],
                "verdicts": verdict_rows(verdicts),
                "labels": labels,
                "categories": CATEGORIES,
                "lease_ms": int(settings.labeling.lease_s * 1000),
                "query": filters_query(dict(request.query_params)),
            },
        )

    @post("/{task_id:str}/lease", status_code=200)
    async def renew(
        self,
        request: Request[Any, Any, Any],
        labeling: LabelingQueue,
        settings: Settings,
        task_id: str,
    ) -> dict[str, str]:
        """Keep the lease while the page is open (the page's script calls this)."""
        session = console_session(request)
        task = await labeling.renew(
            session.tenant_id, task_id, session.labeler, lease_s=settings.labeling.lease_s
        )
        return {
            "task": task.id,
            "lease_until": task.lease_until.isoformat() if task.lease_until else "",
        }

    @post("/{task_id:str}/labels", status_code=303)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        labeling: LabelingQueue,
        settings: Settings,
        task_id: str,
    ) -> Redirect:
        """Store the label (the server enforces the task's overlap), then the next task."""
        session = console_session(request)
        form = await request.form()
        ratings = {}
        for key, value in form.items():
            if key.startswith("rating_") and str(value) != "":
                # NOTE: the range is check_label's to refuse; a form only sends digits.
                if not str(value).isdecimal():
                    raise InvalidInputError("A source's relevance is 0, 1 or 2.")
                ratings[key.removeprefix("rating_")] = int(str(value))
        label = LabelInput(
            categories=[str(c) for c in form.getall("category", [])],
            source_ratings=ratings,
            corrected_answer=str(form.get("corrected_answer") or "").strip() or None,
            note=str(form.get("note") or "").strip() or None,
        )
        await labeling.submit(session.tenant_id, task_id, session.labeler, label)
        if form.get("then") == "queue":
            return Redirect("/admin/queue", status_code=303)
        return await open_next(session, labeling, settings, dict(request.query_params))

    @post("/{task_id:str}/skip", status_code=303)
    async def skip(
        self,
        request: Request[Any, Any, Any],
        labeling: LabelingQueue,
        settings: Settings,
        task_id: str,
    ) -> Redirect:
        """Give the task back (it is not offered to this labeler again); the next one."""
        session = console_session(request)
        await labeling.skip(session.tenant_id, task_id, session.labeler)
        return await open_next(session, labeling, settings, dict(request.query_params))
