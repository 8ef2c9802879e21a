"""Prompt assembly within token budgets."""

from __future__ import annotations

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
