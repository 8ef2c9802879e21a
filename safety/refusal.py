"""The polite text a refused turn answers with (the app ends the turn with
``finish_reason="content_filter"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from safety.types import Category

if TYPE_CHECKING:
    from collections.abc import Iterator

FINISH_REASON = "content_filter"

_MESSAGES = {
    Category.PROMPT_INJECTION: "I can't follow instructions that try to change how I work. "
    "Please ask your question directly and I'll gladly help.",
    Category.INVALID_INPUT: "I couldn't process that message: it is too long or contains "
    "characters I can't accept. Please shorten or clean it up and try again.",
    Category.BLOCKED_TOPIC: "Sorry, I can't help with that topic here. "
    "Is there something else I can do for you?",
    Category.SYSTEM_PROMPT_LEAK: "Sorry, I can't share that. "
    "Is there anything else I can help with?",
    Category.SELF_HARM: "I'm sorry you're going through this. I can't help with that, but you "
    "don't have to face it alone: please reach out to someone you trust or a local crisis line.",
}
_DEFAULT = "Sorry, I can't help with that request. Is there something else I can do for you?"


def refusal_text(category: Category) -> str:
    """The refusal sentence for ``category``."""
    return _MESSAGES.get(category, _DEFAULT)


def refusal_pieces(category: Category) -> Iterator[str]:
    """The refusal as stream pieces (one word each, the way tokens arrive)."""
    words = refusal_text(category).split(" ")
    for i, word in enumerate(words):
        yield word if i == 0 else " " + word
