"""The conversational query stream: deterministic, interleaved, drifting between neighbours."""

from __future__ import annotations

import itertools

import pytest

from bench.retrieval_corpus import LabelledQuery
from bench.retrieval_stream import build_stream

LABELS = [
    LabelledQuery(f"What is topic {i}?", f"topic {i}", frozenset({f"doc{i}.txt"}), i)
    for i in range(30)
]


def test_the_stream_interleaves_conversations_and_tenants() -> None:
    stream = build_stream(LABELS, conversations=5, turns=4, tenants=2, seed=3)
    assert len(stream) == 20
    assert [t.conversation for t in stream[:5]] == [0, 1, 2, 3, 4]
    assert all(t.tenant == t.conversation % 2 for t in stream)
    assert [t.turn for t in stream] == [i // 5 for i in range(20)]
    assert all(t.kind == "open" for t in stream[:5])
    assert all(t.kind in {"rephrase", "move", "return"} for t in stream[5:])


def test_openings_are_label_questions_and_follow_ups_stay_near() -> None:
    stream = build_stream(LABELS, conversations=6, turns=8, tenants=3, seed=9)
    where = {next(iter(q.relevant)): q.order for q in LABELS}
    by_conv: dict[int, list[int]] = {}
    for turn in stream:
        (doc,) = turn.relevant
        by_conv.setdefault(turn.conversation, []).append(where[doc])
        if turn.kind == "open":
            assert turn.query == LABELS[where[doc]].query
        else:
            assert LABELS[where[doc]].title in turn.query
    for conv, positions in by_conv.items():
        for step, (a, b) in enumerate(itertools.pairwise(positions)):
            kind = stream[(step + 1) * 6 + conv].kind
            if kind == "rephrase":
                assert a == b
            elif kind == "move":
                assert abs(a - b) <= 1
            else:
                assert b == positions[0]


def test_the_stream_is_deterministic_per_seed() -> None:
    assert build_stream(LABELS, 4, 5, 2, seed=1) == build_stream(LABELS, 4, 5, 2, seed=1)
    assert build_stream(LABELS, 4, 5, 2, seed=1) != build_stream(LABELS, 4, 5, 2, seed=2)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least two labels"):
        build_stream(LABELS[:1], 1, 1, 1)
    with pytest.raises(ValueError, match="at least two labels"):
        build_stream(LABELS, 0, 1, 1)
