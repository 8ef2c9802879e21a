"""What opens labeling tasks: users (a thumbs-down, a report) and turns (an answer the
safety filters flagged, one whose sources had chunks withheld, one grounded in weak
matches).

The queue (``conversation.LabelingQueue``) stores whatever it is given; this module
decides which answers deserve a labeler's look and words why, so a labeler reads
the same reasons whichever way a task came in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import structlog

if TYPE_CHECKING:
    from collections.abc import Sequence

    from conversation import FlagVerdict, LabelingQueue, LabelingTask, MessageInfo

__all__ = ["REPORT_REASONS", "AnswerReview", "ReportReason", "queue_report", "queue_thumbs_down"]

log = structlog.get_logger(__name__)

ReportReason = Literal["inaccurate", "unsafe", "pii", "bad_citation", "off_topic", "other"]
"""Why a user reports an answer (the task's category)."""
REPORT_REASONS: tuple[ReportReason, ...] = get_args(ReportReason)


async def queue_thumbs_down(
    labeling: LabelingQueue, answer: MessageInfo, comment: str | None
) -> LabelingTask:
    """A user's thumbs-down on ``answer`` becomes (or joins) a ``user_feedback`` task."""
    reason = f"thumbs down: {comment}" if comment else "thumbs down"
    return await labeling.enqueue_answer(
        answer, source="user_feedback", reason=reason, category="user_report"
    )


async def queue_report(
    labeling: LabelingQueue, answer: MessageInfo, reason: ReportReason, comment: str | None
) -> LabelingTask:
    """A user's report of ``answer`` becomes (or joins) a ``user_report`` task whose
    reason shows the report's reason and comment."""
    shown = f"reported as {reason}" + (f": {comment}" if comment else "")
    return await labeling.enqueue_answer(
        answer, source="user_report", reason=shown, category=reason
    )


class AnswerReview:
    """Queues a turn's stored answer for labelers when it deserves a look."""

    def __init__(self, labeling: LabelingQueue, *, low_score: float) -> None:
        """Args:
        labeling: Where the tasks go.
        low_score: A complete answer whose best source's similarity to the question
            is below this is queued as ``low_retrieval``.
        """
        self._labeling = labeling
        self._low_score = low_score

    async def answer_stored(
        self,
        answer: MessageInfo,
        verdicts: Sequence[FlagVerdict],
        collection: str | None = None,
    ) -> None:
        """Queue the answer for what it shows: ``safety`` for the verdicts that flagged
        or refused it, and, for a complete answer, ``withheld`` when chunks were kept
        out of its prompt or redacted in it, and ``low_retrieval`` when the best
        source it was given is a weak match.

        Every task records the answer's model version and ``collection`` (the one the
        turn searched; its best source's when it searched them all).

        Never raises: the answer is stored already, and a lost task must not turn it
        into an error for the client (it is logged instead).
        """
        try:
            await self._labeling.enqueue_flags(answer, verdicts, collection=collection)
            if answer.status != "complete":
                return
            # Left out of the prompt (``n: null``), or redacted in it: either way a
            # labeler should see what the filter held back, and may overrule it.
            withheld = [s for s in answer.sources if not s.get("n") or _redacted(s)]
            if withheld:
                await self._labeling.enqueue_answer(
                    answer,
                    source="withheld",
                    reason=_withheld_reason(withheld),
                    category=_filter_of(withheld[0]),
                    collection=collection,
                )
            # NOTE: the sources the model was given: a withheld chunk grounds nothing.
            similarities = [
                float(s["similarity"])
                for s in answer.sources
                if s.get("n") and isinstance(s.get("similarity"), int | float)
            ]
            best = max(similarities, default=None)
            if best is not None and best < self._low_score:
                await self._labeling.enqueue_answer(
                    answer,
                    source="low_retrieval",
                    reason=f"the best source's similarity to the question is {best:.2f}, "
                    f"under {self._low_score:.2f}",
                    category="low_score",
                    collection=collection,
                )
        except Exception as exc:
            log.error("labeling_enqueue_failed", message_id=answer.id, error=repr(exc))


def _filter_of(source: dict[str, object]) -> str:
    verdict = source.get("verdict")
    name = verdict.get("filter") if isinstance(verdict, dict) else None
    return str(name) if name else "withheld"


def _redacted(source: dict[str, object]) -> bool:
    verdict = source.get("verdict")
    return isinstance(verdict, dict) and verdict.get("action") == "redact"


def _withheld_reason(withheld: list[dict[str, object]]) -> str:
    chunks = ", ".join(
        f"{s.get('document_name')} ({_filter_of(s)}{', redacted' * _redacted(s)})" for s in withheld
    )
    count = len(withheld)
    return f"{count} chunk{'s' * (count != 1)} withheld from the prompt: {chunks}"
