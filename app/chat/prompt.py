"""Prompt assembly: numbered sources in the system message, then the kept history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from inference import ChatMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

SYSTEM_PROMPT = (
    "You are a helpful assistant that answers questions using the numbered sources "
    "below. Base your answer on the sources, cite the ones you use with their number "
    "in square brackets, like [1], and say you don't know when the sources do not "
    "contain the answer. Be concise."
)
NO_SOURCES_PROMPT = (
    "You are a helpful assistant. No documents matched this question: say so if the "
    "question is about the user's documents, and answer briefly otherwise."
)


@dataclass(frozen=True, slots=True)
class Source:
    """A retrieved chunk as shown to the model and to the client, numbered from 1."""

    n: int
    chunk_id: str
    document_id: str
    document_name: str
    collection: str
    position: int
    score: float
    text: str
    verdict: Mapping[str, object] | None = None
    """The retrieval filter's judgement of the chunk when it fired (``filter``,
    ``action``, ``rules``, ``score``): a redacted chunk's ``text`` is the placeholder
    the model saw; a refused one has ``n`` 0 (it was not in the prompt)."""
    similarity: float | None = None
    """The chunk's cosine similarity with the question (``score`` is the hybrid
    search's fused rank score, which says nothing of how close the chunk is)."""
    tokens: int | None = None
    """What ``sources_tokens`` counts it as, once ``fit_sources`` has counted it (so a
    turn tokenises each source once); never shown or stored."""

    @classmethod
    def from_dict(cls, shown: Mapping[str, Any]) -> Source:
        """The source ``to_dict`` showed (as stored with an answer)."""
        verdict = shown.get("verdict")
        similarity = shown.get("similarity")
        return cls(
            n=int(shown.get("n") or 0),
            chunk_id=str(shown["chunk_id"]),
            document_id=str(shown["document_id"]),
            document_name=str(shown["document_name"]),
            collection=str(shown["collection"]),
            position=int(shown["position"]),
            score=float(shown["score"]),
            text=str(shown["text"]),
            verdict=dict(verdict) if isinstance(verdict, Mapping) else None,
            similarity=None if similarity is None else float(similarity),
        )

    def to_dict(self) -> dict[str, object]:
        shown: dict[str, object] = {
            "n": self.n or None,
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "document_name": self.document_name,
            "collection": self.collection,
            "position": self.position,
            "score": round(self.score, 4),
            "text": self.text,
        }
        if self.similarity is not None:
            shown["similarity"] = round(self.similarity, 4)
        if self.verdict is not None:
            shown["verdict"] = dict(self.verdict)
        return shown


def fit_sources(
    sources: Sequence[Source], budget: int, count_tokens: Callable[[str], int]
) -> list[Source]:
    """The best-ranked sources whose texts fit ``budget`` tokens, renumbered from 1."""
    kept: list[Source] = []
    used = 0
    for source in sources:
        cost = sources_tokens([source], count_tokens)
        if used + cost > budget:
            break
        used += cost
        kept.append(replace(source, tokens=cost))
    return [replace(s, n=i) for i, s in enumerate(kept, start=1)]


def stable_order(sources: Sequence[Source], shown_before: Sequence[Sequence[str]]) -> list[Source]:
    """``sources`` led by the chunks an earlier answer of the conversation was shown,
    in that answer's order, then the others by rank; renumbered from 1.

    NOTE: a follow-up often retrieves some of the same chunks. Numbered by rank, they
    move, and the prompt differs from the earlier turns' right after the
    instructions; kept in their earlier places, they extend the prefix the engine
    cached for such a turn (issue 15, RAG-aware KV reuse). ``shown_before`` holds the
    chunk ids of the latest answers, newest first; the one whose leading chunks are
    most of ``sources`` gives the order (the newest on a tie), since a prompt's
    shared prefix ends at its first chunk not shown again. Which chunks are shown is
    still decided by rank (``fit_sources``); only their order changes.
    """
    kept = {s.chunk_id for s in sources}

    def lead(shown: Sequence[str]) -> int:
        run = 0
        while run < len(shown) and shown[run] in kept:
            run += 1
        return run

    best = max(shown_before, key=lead, default=())
    place = {chunk_id: i for i, chunk_id in enumerate(best[: lead(best)])}
    ordered = sorted(sources, key=lambda s: (place.get(s.chunk_id, len(place)), s.n))
    return [replace(s, n=i) for i, s in enumerate(ordered, start=1)]


def fit_history(
    history: Sequence[ChatMessage], budget: int, count_tokens: Callable[[str], int]
) -> list[ChatMessage]:
    """The most recent whole turns that fit ``budget`` tokens, oldest first.

    When the conversation outgrows ``budget``, the oldest messages are left out up
    to a cut point rounded up to a quarter of ``budget`` (so 3/4 to all of it is
    kept): the next turns keep the same first message, so their prompts start
    like this one's and the engine's prefix cache reuses its keys and values,
    until the conversation has grown by another quarter.
    """
    costs = [count_tokens(message.content) + 4 for message in history]
    overflow = sum(costs) - budget
    start = 0
    if overflow > 0:
        step = max(budget // 4, 1)
        cut = -(-overflow // step) * step
        offset, start = 0, len(history)
        for index, cost in enumerate(costs):
            if offset >= cut:
                start = index
                break
            offset += cost
    kept = list(history[start:])
    # NOTE: a history that starts with an assistant reply confuses small models;
    # drop the orphan rather than show half a turn.
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


def sources_tokens(sources: Sequence[Source], count_tokens: Callable[[str], int]) -> int:
    """What ``fit_sources`` counts ``sources`` as (the count it kept, where it did)."""
    return sum(
        count_tokens(source.text) + 8 if source.tokens is None else source.tokens
        for source in sources
    )


def system_message(sources: Sequence[Source]) -> str:
    """The system prompt with the numbered sources (or the one for no sources)."""
    if not sources:
        return NO_SOURCES_PROMPT
    listing = "\n\n".join(f"[{s.n}] (from {s.document_name})\n{s.text.strip()}" for s in sources)
    return f"{SYSTEM_PROMPT}\n\nSources:\n\n{listing}"


def stored_system_message(sources: Sequence[Mapping[str, Any]]) -> str:
    """The system prompt an answer's model was given, from the answer's stored sources
    (the withheld ones, numbered ``None``, were not in it): the labels' export."""
    return system_message([Source.from_dict(s) for s in sources if s.get("n")])


def build_messages(
    question: str, sources: Sequence[Source], history: Sequence[ChatMessage]
) -> list[ChatMessage]:
    """The chat to render: system prompt with sources, history, then the question."""
    return [ChatMessage("system", system_message(sources)), *history, ChatMessage("user", question)]
