"""Sources in a stable order across a conversation's turns: a follow-up that
retrieves chunks of the previous turn shows them where they were, so its prompt
starts like that turn's and the engine's prefix cache serves the shared part."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.chat.context import shown_before
from app.chat.prompt import Source, build_messages, stable_order
from conversation import MessageInfo


def _ranked(*chunk_ids: str) -> list[Source]:
    return [
        Source(i, chunk_id, "d", "doc.md", "default", i, 1 - i / 10, f"text of {chunk_id}")
        for i, chunk_id in enumerate(chunk_ids, start=1)
    ]


def _message(role: Any, status: Any, sources: list[dict[str, Any]]) -> MessageInfo:
    return MessageInfo(
        id=str(uuid.uuid4()), conversation_id="c", tenant_id="t", role=role, content="text",
        status=status, finish_reason=None, model=None, model_version=None, sources=sources,
        citations=[], usage={}, timings={}, error=None, created_at=datetime.now(UTC),
    )  # fmt: skip


def test_the_previous_answers_chunks_keep_their_places_and_the_prompt_its_prefix() -> None:
    before = build_messages("q1", stable_order(_ranked("a", "b", "c"), []), [])[0].content
    after = stable_order(_ranked("x", "b", "a"), [["a", "b", "c"]])
    assert [s.chunk_id for s in after] == ["a", "b", "x"]
    assert [s.n for s in after] == [1, 2, 3]
    assert [s.score for s in after] == [0.7, 0.8, 0.9]  # each keeps its own rank score
    system = build_messages("q2", after, [])[0].content
    shared = system[: system.index("[3]")]
    assert before.startswith(shared)
    assert "text of a" in shared
    assert "text of b" in shared


def test_without_a_shared_lead_the_order_is_the_rank_order() -> None:
    ranked = _ranked("x", "y", "z")
    assert stable_order(ranked, []) == ranked
    # "gone" is not shown again, so the earlier prompt's prefix ends before "y".
    assert stable_order(ranked, [["gone", "y"]]) == ranked


def test_the_earlier_answer_sharing_the_longest_lead_gives_the_order() -> None:
    ranked = _ranked("x", "c", "b", "a")
    newest, older = ["x", "gone"], ["a", "b", "gone", "c"]
    assert [s.chunk_id for s in stable_order(ranked, [newest, older])] == ["a", "b", "x", "c"]
    # On a tie the newest answer wins: its prompt is the likelier to be cached.
    assert stable_order(ranked, [["c", "y"], ["a", "z"]])[0].chunk_id == "c"


def test_shown_before_reads_the_latest_complete_answers_shown_chunks_newest_first() -> None:
    shown = [
        {"n": 2, "chunk_id": "b"},
        {"n": None, "chunk_id": "withheld"},  # refused by the retrieval filter: not shown
        {"n": 1, "chunk_id": "a"},
    ]
    older = _message("assistant", "complete", [{"n": 1, "chunk_id": "old"}])
    question = _message("user", "complete", [])
    assert shown_before([older, question]) == [["old"]]
    assert shown_before([older, question, _message("assistant", "complete", shown)]) == [
        ["a", "b"],
        ["old"],
    ]
    # An interrupted answer's prompt may never have been cached: it is skipped.
    assert shown_before([older, _message("assistant", "interrupted", shown)]) == [["old"]]
    assert shown_before([older] * 5, answers=3) == [["old"]] * 3
    assert shown_before([]) == []
