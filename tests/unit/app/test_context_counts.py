"""A turn's prompt counts each history message's and each source's tokens once,
though each is needed twice (to fit the history or the sources, then for the usage
or the room the sources leave)."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from app.chat.context import ContextBuilder
from app.chat.prompt import Source, fit_sources
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


def test_a_turn_counts_each_history_message_once() -> None:
    counter = WordCounter()
    builder = _builder(counter)
    source = Source(1, "c1", "d1", "guide.md", "default", 0, 0.9, "Send cancel to stop a turn.")
    history = [ChatMessage("user", "How do I start?"), ChatMessage("assistant", "Connect first.")]
    request = TurnRequest("t1", None, "And how do I stop?")
    messages, tokens = builder._messages(request, _route("v1"), [source], history)
    assert [m.content for m in messages[1:]] == [*(m.content for m in history), request.content]
    assert tokens == sum(len(m.content.split()) for m in messages)
    assert counter.asked["How do I start?"] == 1
    assert counter.asked["Connect first."] == 1
    assert counter.asked[messages[0].content] == 1


def test_a_turn_counts_each_source_once() -> None:
    counter = WordCounter()
    builder = _builder(counter)
    texts = ["Send cancel to stop a turn.", "Resume with the last event id."]
    ranked = [
        Source(i, f"c{i}", "d1", "guide.md", "default", i, 0.9, text)
        for i, text in enumerate(texts, start=1)
    ]
    route = _route("v1")
    fitted = fit_sources(ranked, 1000, lambda text: counter.count_tokens(route, text))
    assert [s.tokens for s in fitted] == [len(t.split()) + 8 for t in texts]
    assert "tokens" not in fitted[0].to_dict()
    request = TurnRequest("t1", None, "How do I stop?")
    builder._messages(request, route, fitted, [])
    assert [counter.asked[t] for t in texts] == [1, 1]
