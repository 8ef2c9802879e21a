"""A conversational query stream: follow-up questions that drift around a topic.

Each conversation starts with one labelled query, then walks: it asks about the
same section again in other words (a rephrasing), moves to a neighbouring section
in corpus order (the next or previous part of the same topic, or across a topic
boundary: drift), or comes back to where it started. The follow-up's wording is
made by rule from the section title (``follow_up``), so a follow-up shares its
subject with its label but rarely its words with the previous turn. Conversations
of several tenants are interleaved round-robin, as one node would see them.
Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.retrieval_corpus import LabelledQuery

REPHRASE = (
    "Tell me more about {t}.",
    "Can you explain {t} again, more simply?",
    "Give me an example of {t}.",
    "What are the rules for {t}?",
)
MOVE = (
    "What about {t}?",
    "And {t}?",
    "How does that relate to {t}?",
    "Next, {t}: how does it work?",
)
RETURN = ("Going back to {t}: what was the main point?",)

# Probabilities of the next turn's kind; the rest moves to a neighbour.
P_REPHRASE = 0.4
P_RETURN = 0.1


@dataclass(frozen=True, slots=True)
class Turn:
    """One question of the stream.

    Attributes:
        conversation: Index of its conversation.
        tenant: Index of the conversation's tenant.
        turn: Index within the conversation (0 = the opening question).
        kind: ``open``, ``rephrase``, ``move`` or ``return``.
        query: The question.
        relevant: Names of the documents that answer it (its label's).
    """

    conversation: int
    tenant: int
    turn: int
    kind: str
    query: str
    relevant: frozenset[str]


def follow_up(kind: str, label: LabelledQuery, rng: random.Random) -> str:
    """A follow-up question about ``label``'s section, worded by a rule of ``kind``."""
    templates = {"rephrase": REPHRASE, "move": MOVE, "return": RETURN}[kind]
    return rng.choice(templates).format(t=label.title)


def conversation(
    labels: Sequence[LabelledQuery],
    start: int,
    turns: int,
    rng: random.Random,
) -> list[tuple[str, str, LabelledQuery]]:
    """One conversation: ``(kind, query, label)`` per turn, starting at ``labels[start]``."""
    out = [("open", labels[start].query, labels[start])]
    here = start
    for _ in range(turns - 1):
        draw = rng.random()
        if draw < P_REPHRASE:
            kind = "rephrase"
        elif draw < P_REPHRASE + P_RETURN and here != start:
            kind, here = "return", start
        else:
            kind = "move"
            here = min(max(here + rng.choice((-1, 1)), 0), len(labels) - 1)
        out.append((kind, follow_up(kind, labels[here], rng), labels[here]))
    return out


def build_stream(
    labels: Sequence[LabelledQuery],
    conversations: int,
    turns: int,
    tenants: int,
    seed: int = 1234,
) -> list[Turn]:
    """Interleave ``conversations`` conversations of ``turns`` turns over ``tenants`` tenants.

    Conversation ``c`` belongs to tenant ``c % tenants``; the stream takes turn 0 of
    every conversation, then turn 1 of every one, and so on.

    Raises:
        ValueError: Fewer than two labels, or a count below one.
    """
    if len(labels) < 2 or min(conversations, turns, tenants) < 1:
        raise ValueError("need at least two labels and positive counts")
    rng = random.Random(seed)
    starts = rng.sample(range(len(labels)), min(conversations, len(labels)))
    while len(starts) < conversations:
        starts.append(rng.randrange(len(labels)))
    convs = [conversation(labels, s, turns, rng) for s in starts]
    stream = []
    for t in range(turns):
        for c, conv in enumerate(convs):
            kind, query, label = conv[t]
            stream.append(Turn(c, c % tenants, t, kind, query, label.relevant))
    return stream
