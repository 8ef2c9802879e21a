"""Prompt assembly within token budgets."""

from __future__ import annotations

import itertools

from app.chat.prompt import Source, build_messages, fit_history, fit_sources
from inference import ChatMessage


def words(text: str) -> int:
    return len(text.split())


def test_fit_sources_keeps_the_best_that_fit_and_renumbers() -> None:
    sources = [
        Source(i, f"c{i}", "d", "doc.md", "default", i, 1 - i / 10, "w " * 50) for i in (1, 2, 3)
    ]
    kept = fit_sources(sources, budget=120, count_tokens=words)
    assert [s.chunk_id for s in kept] == ["c1", "c2"]
    assert [s.n for s in kept] == [1, 2]


def test_fit_history_keeps_recent_whole_turns_starting_with_a_user() -> None:
    history = [
        ChatMessage("user", "one two three"),
        ChatMessage("assistant", "four five six"),
        ChatMessage("user", "seven"),
        ChatMessage("assistant", "eight"),
    ]
    kept = fit_history(history, budget=12, count_tokens=words)
    assert [m.content for m in kept] == ["seven", "eight"]
    assert fit_history(history, budget=0, count_tokens=words) == []


def test_build_messages_numbers_sources_in_the_system_prompt() -> None:
    source = Source(1, "c", "d", "manual.md", "default", 0, 0.9, "Press the red button.")
    messages = build_messages("How do I start it?", [source], [ChatMessage("user", "hi")])
    assert messages[0].role == "system"
    assert "[1] (from manual.md)\nPress the red button." in messages[0].content
    assert [m.role for m in messages[1:]] == ["user", "user"]
    assert messages[-1].content == "How do I start it?"


def test_without_sources_the_model_is_told_so() -> None:
    system = build_messages("hi", [], [])[0].content
    assert "No documents matched" in system


def test_fit_history_keeps_the_same_first_message_while_a_conversation_grows() -> None:
    """Prefix reuse: the cut point moves in steps of a quarter of the budget, so
    consecutive turns' prompts start alike (a one-message slide would change every
    prompt from its first history message on)."""
    history: list[ChatMessage] = []
    firsts = []
    for turn in range(12):
        history += [
            ChatMessage("user", f"q{turn} " * 16),
            ChatMessage("assistant", f"a{turn} " * 16),
        ]
        kept = fit_history(history, budget=400, count_tokens=words)
        assert sum(words(m.content) + 4 for m in kept) <= 400
        assert kept[0].role == "user"
        assert kept[-1] == history[-1]
        firsts.append(kept[0].content)
    # 20 tokens a message, 40 a turn: the cut moves by 100 tokens at a time, so the
    # first message changes at most every second turn once the budget is full.
    changes = sum(a != b for a, b in itertools.pairwise(firsts))
    assert changes <= len(firsts) // 2
    assert firsts[-1] != firsts[0]
    # At least 3/4 of the budget is kept, less the message straddling the cut and
    # an assistant reply left without its question.
    assert sum(words(m.content) + 4 for m in kept) >= 400 - 100 - 20 - 20
