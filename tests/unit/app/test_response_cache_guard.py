"""Two similar questions share a cached answer only when they agree on what they name."""

from __future__ import annotations

import pytest

from app.chat.response_cache.guard import compatible


@pytest.mark.parametrize(
    ("cached", "new"),
    [
        ('How does the "for" statement work?', 'Can you explain the "for" statement?'),
        ("How do I cancel a turn over WebSocket?", "how can I cancel a turn on a WebSocket"),
        ("What is the GIL?", "Tell me about the GIL."),
        ("Why don't my uploads finish?", "Why do my uploads not finish?"),
        ("What does __init__ do?", "Explain what `__init__` does."),
    ],
)
def test_paraphrases_are_compatible(cached: str, new: str) -> None:
    assert compatible(cached, new)
    assert compatible(new, cached)


@pytest.mark.parametrize(
    ("cached", "new"),
    [
        ('What is the "except" clause?', 'What is the "except*" clause?'),
        ('How does "async for" work?', 'How does "async with" work?'),
        ("How do I enable the cache?", "How do I disable the cache?"),
        ("How do I install the agent?", "How do I uninstall the agent?"),
        ("Is the token valid?", "Is the token invalid?"),
        ("How do I encode the key?", "How do I decode the key?"),
        ("Is streaming supported?", "Is streaming not supported?"),
        ("Can I delete a document?", "Can I never delete a document?"),
        ("Why do I get error 404?", "Why do I get error 500?"),
        ("What does dict.get return?", "What does dict.pop return?"),
        ("What are user-defined functions?", "What are built-in functions?"),
        ("How do I configure TLS?", "How do I configure SSH?"),
    ],
)
def test_questions_that_name_or_negate_differently_are_not(cached: str, new: str) -> None:
    assert not compatible(cached, new)
    assert not compatible(new, cached)
