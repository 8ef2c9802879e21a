"""Citations: [n] markers map to the numbered sources that support their claims."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from app.chat.citations import LEXICAL_THRESHOLD, SUPPORT_THRESHOLD, cite, sentences
from app.chat.prompt import Source

if TYPE_CHECKING:
    from collections.abc import Sequence


def _source(n: int, text: str) -> Source:
    return Source(n, f"c{n}", f"d{n}", f"doc{n}.md", "default", 0, 0.5, text)


SOURCES = [
    _source(1, "The reactor runs on helium pellets."),
    _source(2, "Inspections happen every ninety days."),
]


def _embedder(same: dict[str, str]) -> tuple[list[Sequence[str]], object]:
    """An embed function giving every text its own axis, except that each key of
    ``same`` shares its value's axis (cosine 1 with it); it records its calls."""
    calls: list[Sequence[str]] = []

    async def embed(texts: Sequence[str]) -> tuple[list[list[float]], list[int]]:
        calls.append(list(texts))
        axes = sorted({same.get(t, t) for t in texts})
        rows = np.eye(len(axes), dtype=np.float32)
        return [rows[axes.index(same.get(t, t))].tolist() for t in texts], []

    return calls, embed


async def test_supported_markers_become_citations_in_order_of_first_mention() -> None:
    cited = await cite(
        "Inspections happen every ninety days [2]. Helium pellets run it [1].", SOURCES
    )
    assert [(c["n"], c["kind"], c["document_id"]) for c in cited.citations] == [
        (2, "marker", "d2"),
        (1, "marker", "d1"),
    ]
    assert cited.dropped == 0


async def test_a_marker_citing_an_unrelated_chunk_is_dropped_and_counted() -> None:
    """Guards issue 11: a [n] whose chunk does not hold the claim is no citation."""
    cited = await cite("Inspections happen every ninety days [1].", SOURCES)
    assert cited.citations == []
    assert cited.dropped == 1


async def test_every_unsupported_mention_counts_a_supported_one_cites_once() -> None:
    answer = "The reactor runs on helium pellets [1]. Helium pellets, reactor [1]. Bananas [1]."
    cited = await cite(answer, SOURCES)
    assert [c["n"] for c in cited.citations] == [1]
    assert cited.dropped == 1


async def test_grouped_markers_are_judged_one_by_one() -> None:
    cited = await cite("The reactor runs on helium pellets [1, 2].", SOURCES)
    assert [c["n"] for c in cited.citations] == [1]
    assert cited.dropped == 1


async def test_markers_beyond_the_sources_are_ignored_not_counted() -> None:
    """Guards against citing a chunk that was never shown to the model."""
    cited = await cite("The reactor runs on helium pellets [7][1].", SOURCES)
    assert [c["n"] for c in cited.citations] == [1]
    assert cited.dropped == 0


async def test_a_kept_citation_carries_its_supporting_span() -> None:
    chunk = (
        "Glaciers form over centuries. They carve deep valleys\n"
        "as they move downhill. Old ice looks blue."
    )
    sources = [_source(1, chunk), *SOURCES[1:]]
    answer = (
        "Glaciers carve deep valleys as they move [1]. Inspections happen every ninety days. [2]"
    )
    first, second = (await cite(answer, sources)).citations
    span = first["support"]
    assert isinstance(span, dict)
    # A wrapped line does not end a sentence: the span is the whole one.
    assert chunk[span["start"] : span["end"]] == "They carve deep valleys\nas they move downhill."
    assert span["score"] == 0.833  # they, carve, deep, valleys, move; not glaciers
    # A marker opening a sentence belongs to the sentence before it.
    assert second["support"] == {
        "start": 0,
        "end": 37,
        "score": 1.0,
        "combined": 1.0,
        "supported": True,
    }


async def test_without_markers_sources_sharing_the_answers_words_are_attributed() -> None:
    """Attribution, not a checked claim: each attributed source says whether it
    supports a sentence of the answer."""
    answer = "The reactor runs on helium pellets. Bananas are yellow fruit."
    cited = await cite(answer, SOURCES)
    assert [(c["n"], c["kind"]) for c in cited.citations] == [(1, "overlap")]
    assert cited.dropped == 0
    support = cited.citations[0]["support"]
    assert isinstance(support, dict)
    assert support["supported"] is True
    loose = "The reactor pellets are yellow bananas grown in orbit by monkeys."
    (weak,) = (await cite(loose, SOURCES)).citations
    assert weak["kind"] == "overlap"
    assert weak["support"]["supported"] is False  # type: ignore[index]
    assert await cite("I do not know.", SOURCES) == type(cited)()
    assert (await cite("anything [1]", [])).citations == []


async def test_embedding_vetoes_a_claim_that_only_shares_words() -> None:
    """Shared words alone keep it; a claim far from the sentence in meaning is dropped."""
    answer = "Inspections never happen every ninety days [2]."
    assert LEXICAL_THRESHOLD <= 5 / 6
    assert len((await cite(answer, SOURCES)).citations) == 1
    calls, embed = _embedder({})
    cited = await cite(answer, SOURCES, embed)  # type: ignore[arg-type]
    assert cited.citations == []
    assert cited.dropped == 1
    assert len(calls) == 1  # one batch: the claim and the cited chunk's sentence


async def test_embedding_keeps_a_paraphrase_that_shares_fewer_words() -> None:
    chunk = "Reactor inspections happen every ninety days."
    answer = "Reactor inspections happen every quarter of the calendar year [1]."
    claim = "Reactor inspections happen every quarter of the calendar year."
    sources = [_source(1, chunk)]
    assert (await cite(answer, sources)).dropped == 1  # 4 of 7 words: below the cut-off
    _, embed = _embedder({claim: chunk})
    (kept,) = (await cite(answer, sources, embed)).citations  # type: ignore[arg-type]
    support = kept["support"]
    assert isinstance(support, dict)
    assert support["similarity"] == pytest.approx(1.0)
    assert float(support["combined"]) >= SUPPORT_THRESHOLD


async def test_a_failing_embedder_falls_back_to_shared_words() -> None:
    async def broken(texts: Sequence[str]) -> tuple[list[list[float]], list[int]]:
        raise RuntimeError("model gone")

    cited = await cite("The reactor runs on helium pellets [1].", SOURCES, broken)
    assert [c["n"] for c in cited.citations] == [1]


def test_sentences_end_at_marks_and_blank_lines_not_at_wrapped_lines() -> None:
    text = "One sentence\nwrapped here. Another!\n\nA heading line\n* an item\n* another"
    assert [s for _, _, s in sentences(text)] == [
        "One sentence\nwrapped here.",
        "Another!",
        "A heading line",
        "* an item",
        "* another",
    ]
