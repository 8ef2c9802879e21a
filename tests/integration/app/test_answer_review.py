"""Which stored answers a turn queues for labelers, on SQLite and PostgreSQL.

``AnswerReview`` reads the answer as the pipeline stored it: the safety verdicts
that flagged it, the chunks withheld from its prompt (``n: null``), and how close
its best source is to the question (``similarity``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from app.labeling.intake import AnswerReview
from conversation import LabelingQueue, MessageInfo, MessageStatus, TaskFilters
from kernel.orm import utcnow
from safety import Action, Category, Stage, Verdict

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

LOW = 0.4
FLAG = Verdict("harmful", Stage.OUTPUT, Category.VIOLENCE, Action.FLAG, 0.85, "threat")
ALLOW = Verdict("pii", Stage.OUTPUT, Category.PII, Action.ALLOW, 0.0, "")


def _source(n: int | None, similarity: float, **extra: Any) -> dict[str, Any]:
    return {
        "n": n,
        "chunk_id": str(uuid.uuid4()),
        "document_id": "d",
        "document_name": f"doc{n}.md",
        "collection": "garden",
        "position": 0,
        "score": 0.5,
        "similarity": similarity,
        "text": "text",
        **extra,
    }


WITHHELD = _source(
    None, 0.9, verdict={"filter": "chunk_injection", "action": "refuse", "rules": ["x"]}
)


def _answer(sources: list[dict[str, Any]], status: MessageStatus = "complete") -> MessageInfo:
    return MessageInfo(
        id=str(uuid.uuid4()),
        conversation_id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        role="assistant",
        content="An answer.",
        status=status,
        finish_reason="stop",
        model="m",
        model_version="v7",
        sources=sources,
        citations=[],
        usage={},
        timings={},
        error=None,
        created_at=utcnow(),
    )


@pytest.fixture
def labeling(sessions: async_sessionmaker[AsyncSession]) -> LabelingQueue:
    return LabelingQueue(sessions)


async def _queued(labeling: LabelingQueue, answer: MessageInfo) -> dict[str, Any]:
    tasks = await labeling.list_tasks(answer.tenant_id, TaskFilters())
    return {t.source: t for t in tasks}


async def test_withheld_chunks_and_a_weak_best_source_queue_a_complete_answer(
    labeling: LabelingQueue,
) -> None:
    answer = _answer([_source(1, 0.31), _source(2, 0.12), WITHHELD])
    await AnswerReview(labeling, low_score=LOW).answer_stored(answer, [FLAG, ALLOW], "kitchen")

    tasks = await _queued(labeling, answer)
    assert set(tasks) == {"safety", "withheld", "low_retrieval"}
    withheld, low = tasks["withheld"], tasks["low_retrieval"]
    assert withheld.reason == "1 chunk withheld from the prompt: docNone.md (chunk_injection)"
    assert withheld.category == "chunk_injection"
    # The withheld chunk's 0.9 does not count: the answer could not draw on it.
    assert low.reason == "the best source's similarity to the question is 0.31, under 0.40"
    for task in tasks.values():
        assert (task.model_version, task.collection) == ("v7", "kitchen")
        assert (task.message_id, task.conversation_id) == (answer.id, answer.conversation_id)


async def test_a_chunk_redacted_in_the_prompt_queues_the_answer_too(
    labeling: LabelingQueue,
) -> None:
    redacted = _source(
        2, 0.7, verdict={"filter": "chunk_injection", "action": "redact", "rules": ["x"]}
    )
    flagged = _source(3, 0.6, verdict={"filter": "chunk_injection", "action": "flag"})
    answer = _answer([_source(1, 0.8), redacted, flagged])
    await AnswerReview(labeling, low_score=LOW).answer_stored(answer, [])
    task = (await _queued(labeling, answer))["withheld"]
    assert task.reason == "1 chunk withheld from the prompt: doc2.md (chunk_injection, redacted)"


async def test_a_close_best_source_or_no_source_queues_nothing(labeling: LabelingQueue) -> None:
    review = AnswerReview(labeling, low_score=LOW)
    close = _answer([_source(1, 0.62), _source(2, 0.2)])
    none = _answer([])
    await review.answer_stored(close, [ALLOW])
    await review.answer_stored(none, [])
    assert await _queued(labeling, close) == {}
    assert await _queued(labeling, none) == {}
    weak = _answer([_source(1, 0.3)])
    await review.answer_stored(weak, [])
    task = (await _queued(labeling, weak))["low_retrieval"]
    assert task.collection == "garden", "without a turn collection, the best source's"
    assert task.reason == "the best source's similarity to the question is 0.30, under 0.40"


@pytest.mark.parametrize("status", ["refused", "cancelled", "failed"])
async def test_an_unfinished_answer_is_queued_for_its_flags_only(
    labeling: LabelingQueue, status: MessageStatus
) -> None:
    answer = _answer([_source(1, 0.1), WITHHELD], status)
    await AnswerReview(labeling, low_score=LOW).answer_stored(answer, [FLAG])
    assert set(await _queued(labeling, answer)) == {"safety"}


async def test_a_queue_that_fails_costs_the_turn_nothing(
    labeling: LabelingQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the turn: its answer is stored before review, so review never raises."""

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(labeling, "enqueue_answer", broken)
    with structlog.testing.capture_logs() as logs:
        await AnswerReview(labeling, low_score=LOW).answer_stored(_answer([WITHHELD]), [FLAG])
    assert [entry["event"] for entry in logs] == ["labeling_enqueue_failed"]
