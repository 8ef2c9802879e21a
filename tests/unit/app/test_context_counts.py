"""The turn context counts each text's tokens once: a source when the sources are
fitted and again for the room they leave the history, a history message when the
history is fitted and again for the usage, the same history on the next turn."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from app.chat.context import COUNTS_KEPT, ContextBuilder
from app.chat.prompt import Source
from app.chat.turn import PipelineConfig, TurnRequest
from app.routing.gateway import Route
from app.routing.specs import VersionSpec
from inference import ChatMessage


class WordCounter:
    """A gateway whose tokenizer counts words, and which records what it was asked."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()

    def count_tokens(self, route: Route, text: str) -> int:
        self.asked[text] += 1
        return len(text.split())


def _route(version: str) -> Route:
    spec = VersionSpec("smol", version, "embedded")
    return Route(cast("Any", None), spec, cast("Any", None))


def _builder(counter: WordCounter) -> ContextBuilder:
    return ContextBuilder(cast("Any", None), cast("Any", counter), PipelineConfig(), None)


def test_a_turn_counts_each_source_and_history_message_once() -> None:
    counter = WordCounter()
    builder = _builder(counter)
    route = _route("v1")
    source = Source(1, "c1", "d1", "guide.md", "default", 0, 0.9, "Send cancel to stop a turn.")
    history = [ChatMessage("user", "How do I start?"), ChatMessage("assistant", "Connect first.")]
    request = TurnRequest("t1", None, "And how do I stop?")
    for _ in range(2):  # the next turn of the same conversation
        messages, tokens = builder._messages(request, route, [source], history)
        assert tokens == sum(len(m.content.split()) for m in messages)
    assert counter.asked[source.text] == 1
    assert counter.asked["How do I start?"] == 1
    assert counter.asked[messages[0].content] == 1  # the system prompt, the same both turns


def test_counts_are_kept_per_model_version_and_the_oldest_are_forgotten() -> None:
    counter = WordCounter()
    builder = _builder(counter)
    assert builder.count_tokens(_route("v1"), "a b c") == 3
    assert builder.count_tokens(_route("v2"), "a b c") == 3
    assert counter.asked["a b c"] == 2  # another version may tokenize otherwise
    for i in range(COUNTS_KEPT):
        builder.count_tokens(_route("v1"), f"text {i}")
    builder.count_tokens(_route("v1"), "a b c")
    assert counter.asked["a b c"] == 3
    builder.count_tokens(_route("v1"), f"text {COUNTS_KEPT - 1}")
    assert counter.asked[f"text {COUNTS_KEPT - 1}"] == 1
