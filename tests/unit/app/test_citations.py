"""Citations: [n] markers map to the numbered sources shown to the model."""

from __future__ import annotations

from app.chat.citations import cite
from app.chat.prompt import Source


def _source(n: int, text: str) -> Source:
    return Source(n, f"c{n}", f"d{n}", f"doc{n}.md", "default", 0, 0.5, text)


SOURCES = [
    _source(1, "The reactor runs on helium pellets."),
    _source(2, "Inspections happen every ninety days."),
]


def test_markers_become_citations_in_order_of_first_mention() -> None:
    cited = cite("Inspections are quarterly [2]. Fuel is helium [1][2].", SOURCES)
    assert [(c["n"], c["kind"], c["document_id"]) for c in cited] == [
        (2, "marker", "d2"),
        (1, "marker", "d1"),
    ]


def test_grouped_markers_are_split() -> None:
    assert [c["n"] for c in cite("Both [1, 2].", SOURCES)] == [1, 2]


def test_markers_beyond_the_sources_are_ignored() -> None:
    """Guards against citing a chunk that was never shown to the model."""
    assert [c["n"] for c in cite("See [7] and [1].", SOURCES)] == [1]


def test_without_markers_the_answer_is_attributed_by_shared_words() -> None:
    cited = cite("The reactor runs on helium pellets.", SOURCES)
    assert [(c["n"], c["kind"]) for c in cited] == [(1, "overlap")]


def test_an_unrelated_answer_cites_nothing() -> None:
    assert cite("I do not know.", SOURCES) == []
    assert cite("Bananas are yellow fruit.", SOURCES) == []
    assert cite("anything [1]", []) == []


def test_a_citation_points_at_the_chunk_sentence_that_supports_its_claim() -> None:
    chunk = (
        "Glaciers form over centuries. They carve deep valleys as they move downhill. "
        "Old ice looks blue."
    )
    sources = [_source(1, chunk), *SOURCES[1:]]
    answer = "Glaciers carve deep valleys [1]. Inspections happen every ninety days. [2]"
    first, second = cite(answer, sources)
    span = first["support"]
    assert isinstance(span, dict)
    assert chunk[span["start"] : span["end"]] == "They carve deep valleys as they move downhill."
    assert span["score"] == 0.75  # carve, deep, valleys of glaciers, carve, deep, valleys
    # A marker opening a sentence belongs to the sentence before it.
    assert second["support"] == {"start": 0, "end": 37, "score": 1.0}


def test_a_claim_the_chunk_does_not_hold_has_no_support() -> None:
    (cited,) = cite("Bananas are yellow [1].", SOURCES)
    assert cited["support"] is None
    (partly,) = cite("The reactor needs cooling water [1].", SOURCES)
    assert partly["support"] == {"start": 0, "end": 35, "score": 0.25}  # reactor of 4


def test_overlap_citations_carry_the_span_of_the_whole_answer() -> None:
    (cited,) = cite("The reactor runs on helium pellets.", SOURCES)
    assert cited["support"] == {"start": 0, "end": 35, "score": 1.0}
