"""RAG-shaped requests for the generation benchmark, built from a corpus that ships with Python.

The corpus is ``pydoc_data.topics.topics``: the Python language reference, one text
per topic (79 of them). Each topic is cut into passages of about 100-250 generator
tokens on paragraph boundaries; a request asks a question about one topic and gets
2-5 consecutive passages (from that topic, then the following topics when it is
short) as numbered sources, rendered with ragserve's own prompt code. Everything
is seeded, so every system sees the very same prompts and output budgets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.chat.prompt import Source, build_messages

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from inference import ChatMessage

QUESTIONS = (
    "What does the Python reference say about {topic}?",
    "Explain {topic} in Python, citing the sources.",
    "How does {topic} work? Give a short example.",
    "Summarise the rules for {topic}.",
    "What are the pitfalls of {topic}?",
)


@dataclass(frozen=True, slots=True)
class Passage:
    """One chunk of the corpus."""

    topic: str
    position: int
    text: str


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One request as every system receives it.

    Attributes:
        rid: Unique id within the run, e.g. ``"c8-0003"``.
        prompt_ids: The rendered chat prompt.
        max_tokens: The output budget; EOS may end it sooner.
    """

    rid: str
    prompt_ids: list[int]
    max_tokens: int


def chunk_text(
    text: str, count_tokens: Callable[[str], int], min_tokens: int = 100, max_tokens: int = 250
) -> list[str]:
    """Cut ``text`` into passages of ``min_tokens``-``max_tokens`` tokens on paragraph edges.

    Paragraphs are packed until a passage reaches ``min_tokens``; a passage is
    shorter only at the end of the text or when the next paragraph would push it
    past ``max_tokens``. A paragraph longer than ``max_tokens`` is cut on line
    edges, then word edges.
    """
    pieces: list[str] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if paragraph:
            pieces.extend(_split_long(paragraph, count_tokens, max_tokens))
    passages: list[str] = []
    current: list[str] = []
    for piece in pieces:
        candidate = "\n\n".join([*current, piece])
        if current and count_tokens(candidate) > max_tokens:
            passages.append("\n\n".join(current))
            current = [piece]
        else:
            current.append(piece)
        if count_tokens("\n\n".join(current)) >= min_tokens:
            passages.append("\n\n".join(current))
            current = []
    if current:
        passages.append("\n\n".join(current))
    return passages


def _split_long(paragraph: str, count_tokens: Callable[[str], int], limit: int) -> list[str]:
    if count_tokens(paragraph) <= limit:
        return [paragraph]
    separator = "\n" if "\n" in paragraph else " "
    parts: list[str] = []
    current = ""
    for unit in paragraph.split(separator):
        candidate = f"{current}{separator}{unit}" if current else unit
        if current and count_tokens(candidate) > limit:
            parts.append(current)
            current = unit
        else:
            current = candidate
    if current:
        parts.append(current)
    if separator == "\n":
        return [q for p in parts for q in _split_long(p, count_tokens, limit)]
    return parts


def load_corpus(count_tokens: Callable[[str], int]) -> list[Passage]:
    """Every passage of the Python reference topics, in topic order."""
    from pydoc_data.topics import topics

    return [
        Passage(topic, i, text)
        for topic in sorted(topics)
        for i, text in enumerate(chunk_text(topics[topic], count_tokens))
    ]


def _sources(passages: Sequence[Passage]) -> list[Source]:
    return [
        Source(
            n,
            f"{p.topic}#{p.position}",
            p.topic,
            f"{p.topic}.txt",
            "pydoc",
            p.position,
            1.0,
            p.text,
        )
        for n, p in enumerate(passages, start=1)
    ]


def build_requests(
    corpus: Sequence[Passage],
    render: Callable[[Sequence[ChatMessage]], list[int]],
    count: int,
    seed: int,
    prefix: str,
    max_tokens: tuple[int, int] = (16, 256),
    prompt_tokens: tuple[int, int] = (200, 1000),
) -> list[BenchRequest]:
    """``count`` seeded requests whose prompts are ``prompt_tokens`` long (inclusive).

    Args:
        corpus: Passages from ``load_corpus``.
        render: The engine's ``render_chat`` (chat template, ready for the reply).
        count: How many requests.
        seed: The same seed gives the same requests.
        prefix: Request ids are ``f"{prefix}-{i:04d}"``.
        max_tokens: Inclusive range the output budget is drawn from.
        prompt_tokens: Inclusive range of rendered prompt lengths.
    """
    rng = random.Random(seed)
    low, high = prompt_tokens
    requests: list[BenchRequest] = []
    while len(requests) < count:
        start = rng.randrange(len(corpus))
        topic = corpus[start].topic
        while start > 0 and corpus[start - 1].topic == topic and rng.random() < 0.5:
            start -= 1
        question = rng.choice(QUESTIONS).format(topic=topic.replace("-", " "))
        wanted = rng.randint(2, 5)
        passages = list(corpus[start : start + wanted])
        ids = render(build_messages(question, _sources(passages), []))
        while len(ids) > high and len(passages) > 1:
            passages.pop()
            ids = render(build_messages(question, _sources(passages), []))
        if not low <= len(ids) <= high:
            continue
        budget = rng.randint(*max_tokens)
        requests.append(BenchRequest(f"{prefix}-{len(requests):04d}", ids, budget))
    return requests


def poisson_offsets(count: int, rate: float, seed: int) -> list[float]:
    """Seconds from the start at which ``count`` Poisson arrivals at ``rate``/s come."""
    rng = random.Random(seed)
    offsets: list[float] = []
    now = 0.0
    for _ in range(count):
        offsets.append(now)
        now += rng.expovariate(rate)
    return offsets
