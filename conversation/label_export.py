"""Labels as training data: JSONL lines streamed from the database a page at a time.

Two formats, one line per label that carries a corrected answer:

- ``sft``: ``{"messages": [system, earlier turns..., question, corrected answer], ...}``,
  the chat a supervised fine-tune trains on;
- ``preference``: ``{"prompt": [system, earlier turns..., question], "chosen":
  corrected answer, "rejected": the original answer, ...}``, for DPO-style tuning
  (a correction equal to the original answer says nothing and is left out).

Both carry the answer's ``sources`` (withheld ones included, marked by their
``verdict``), ``model_version``, ``collection``, the task's ids and ``source``, and
the label itself under ``labels``. The system message is rendered from the stored
sources by a ``SystemPrompt`` the app gives (its own prompt, so the line shows
what the model was shown).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, or_, select

from conversation.errors import InvalidInputError
from conversation.models import LabelingTaskRow, LabelRow, MessageRow
from conversation.task_queries import conversations_until, filtered
from conversation.types import TaskFilters

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime

    from sqlalchemy import Select
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import MessageInfo

ExportFormat = Literal["sft", "preference"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("sft", "preference")
EXPORT_PAGE = 500
"""Labels read per query: what an export holds in memory at once."""

SystemPrompt = Callable[[Sequence[Mapping[str, Any]]], str]
"""Renders the system message a model was given from an answer's stored sources."""


def plain_system_prompt(sources: Sequence[Mapping[str, Any]]) -> str:
    """A neutral system message listing the sources the model was given (numbered
    ones; withheld chunks, numbered ``None``, were not in the prompt)."""
    shown = [s for s in sources if s.get("n")]
    if not shown:
        return "Answer the user's question."
    listing = "\n\n".join(
        f"[{s['n']}] (from {s.get('document_name', '')})\n{str(s.get('text', '')).strip()}"
        for s in shown
    )
    return (
        "Answer the user's question from the numbered sources below and cite them "
        f"like [1].\n\nSources:\n\n{listing}"
    )


class LabelExport:
    """The export half of ``LabelingQueue`` (a mixin over its sessions)."""

    _sessions: async_sessionmaker[AsyncSession]
    _system_prompt: SystemPrompt

    def export(
        self, tenant_id: str, *, fmt: ExportFormat, filters: TaskFilters | None = None
    ) -> AsyncIterator[str]:
        """The tenant's labels with a corrected answer as JSONL lines, each ending
        in ``"\\n"``, oldest label first, read ``EXPORT_PAGE`` labels a query.

        ``filters`` narrow by the task's source, collection and model version;
        ``since`` and ``until`` bound the label's ``created_at`` here; ``status``
        is not looked at (an overlap task's first labels are worth exporting
        before its last one). A label whose answer is gone (its conversation was
        deleted) has no prompt left and is left out.

        Raises:
            InvalidInputError: An unknown format (at once, before any line).
        """
        if fmt not in EXPORT_FORMATS:
            raise InvalidInputError(f"an export format is one of {', '.join(EXPORT_FORMATS)}")
        return self._lines(tenant_id, fmt, filters or TaskFilters())

    async def _lines(
        self, tenant_id: str, fmt: ExportFormat, filters: TaskFilters
    ) -> AsyncIterator[str]:
        after: tuple[datetime, str] | None = None
        while True:
            # NOTE: the session closes before any line is yielded, so a slow reader
            # of the stream holds no connection.
            async with self._sessions() as session:
                page = (await session.execute(_page(tenant_id, filters, after))).tuples().all()
                answers = await session.scalars(
                    select(MessageRow).where(
                        MessageRow.tenant_id == tenant_id,
                        MessageRow.id.in_({task.message_id for _, task in page}),
                    )
                )
                histories = await conversations_until(session, answers.all())
            for label, task in page:
                line = self._line(fmt, label, task, histories.get(task.message_id))
                if line is not None:
                    yield json.dumps(line, ensure_ascii=False) + "\n"
            if len(page) < EXPORT_PAGE:
                return
            last = page[-1][0]
            after = (last.created_at, last.id)

    def _line(
        self,
        fmt: ExportFormat,
        label: LabelRow,
        task: LabelingTaskRow,
        messages: list[MessageInfo] | None,
    ) -> dict[str, Any] | None:
        corrected = label.corrected_answer
        if not messages or corrected is None:
            return None
        answer, before = messages[-1], messages[:-1]
        asked = next((i for i in reversed(range(len(before))) if before[i].role == "user"), None)
        if asked is None:
            return None
        earlier = [
            {"role": m.role, "content": m.content}
            for m in before[:asked]
            if m.role in ("user", "assistant") and m.status == "complete" and m.content
        ]
        prompt = [
            {"role": "system", "content": self._system_prompt(answer.sources)},
            *earlier,
            {"role": "user", "content": before[asked].content},
        ]
        common = {
            "sources": answer.sources,
            "model_version": task.model_version or answer.model_version,
            "collection": task.collection,
            "task_id": task.id,
            "message_id": task.message_id,
            "source": task.source,
            "labels": {
                "id": label.id,
                "labeler": label.labeler,
                "categories": label.categories,
                "source_ratings": label.source_ratings,
                "note": label.note,
                "created_at": label.created_at.isoformat(),
            },
        }
        if fmt == "sft":
            return {"messages": [*prompt, {"role": "assistant", "content": corrected}], **common}
        if corrected == answer.content:
            return None
        return {"prompt": prompt, "chosen": corrected, "rejected": answer.content, **common}


def _page(
    tenant_id: str, filters: TaskFilters, after: tuple[datetime, str] | None
) -> Select[LabelRow, LabelingTaskRow]:
    """One page of the tenant's exportable labels with their tasks, after ``after``."""
    query = (
        select(LabelRow, LabelingTaskRow)
        .join(LabelingTaskRow, LabelingTaskRow.id == LabelRow.task_id)
        .where(
            LabelRow.tenant_id == tenant_id,
            LabelingTaskRow.tenant_id == tenant_id,
            LabelRow.corrected_answer.is_not(None),
        )
    )
    query = filtered(query, filters, dates=False, status=False)
    if filters.since is not None:
        query = query.where(LabelRow.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(LabelRow.created_at < filters.until)
    if after is not None:
        created_at, label_id = after
        query = query.where(
            or_(
                LabelRow.created_at > created_at,
                and_(LabelRow.created_at == created_at, LabelRow.id > label_id),
            )
        )
    return query.order_by(LabelRow.created_at, LabelRow.id).limit(EXPORT_PAGE)
