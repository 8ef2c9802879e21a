"""Token-aware chunking: limits measured in the embedder's tokens, overlap, positions."""

from __future__ import annotations

import itertools

import pytest
from tokenizers import Tokenizer

from retrieval.chunking import Chunker, headings
from retrieval.embedding import load_tokenizer

_SENTENCES = [
    f"Sentence number {i} talks about topic {i % 7} and the weather in city {i * 3}."
    for i in range(300)
]
LONG_TEXT = " ".join(_SENTENCES)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    # Only tokenizer.json is read: no model is loaded.
    return load_tokenizer()


def _tokens(tokenizer: Tokenizer, text: str) -> int:
    counting = Tokenizer.from_str(tokenizer.to_str())
    counting.no_truncation()
    counting.no_padding()
    return len(counting.encode(text, add_special_tokens=False).ids)


def test_chunks_respect_the_token_limit(tokenizer: Tokenizer) -> None:
    chunks = Chunker(tokenizer, max_tokens=50, overlap=10).split(LONG_TEXT)
    assert len(chunks) > 10
    for chunk in chunks:
        assert 0 < chunk.token_count <= 50
        assert chunk.token_count == _tokens(tokenizer, chunk.text)


def test_default_chunks_fit_minilm_window(tokenizer: Tokenizer) -> None:
    """Guards the packaged tokenizer's truncation (128) hiding oversized chunks."""
    chunks = Chunker(tokenizer).split(LONG_TEXT)
    assert max(chunk.token_count for chunk in chunks) > 128
    assert all(chunk.token_count + 2 <= 256 for chunk in chunks)


def test_neighbouring_chunks_overlap(tokenizer: Tokenizer) -> None:
    chunks = Chunker(tokenizer, max_tokens=60, overlap=20).split(LONG_TEXT)
    overlapping = 0
    for first, second in itertools.pairwise(chunks):
        tail_words = first.text.split()[-3:]
        if " ".join(tail_words) in second.text:
            overlapping += 1
    assert overlapping >= len(chunks) // 2


def test_no_overlap_means_disjoint_chunks(tokenizer: Tokenizer) -> None:
    chunks = Chunker(tokenizer, max_tokens=60, overlap=0).split(LONG_TEXT)
    assert " ".join(chunk.text for chunk in chunks) == LONG_TEXT


def test_positions_are_sequential_and_text_is_covered(tokenizer: Tokenizer) -> None:
    chunks = Chunker(tokenizer, max_tokens=40, overlap=8).split(LONG_TEXT)
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    joined = " ".join(chunk.text for chunk in chunks)
    for sentence in (_SENTENCES[0], _SENTENCES[150], _SENTENCES[-1]):
        assert sentence in joined


def test_short_text_is_one_chunk(tokenizer: Tokenizer) -> None:
    chunks = Chunker(tokenizer).split("Just a short note.")
    assert len(chunks) == 1
    assert chunks[0].position == 0
    assert chunks[0].text == "Just a short note."


def test_blank_text_has_no_chunks(tokenizer: Tokenizer) -> None:
    assert Chunker(tokenizer).split("   \n\n ") == []


def test_markdown_splits_on_sections(tokenizer: Tokenizer) -> None:
    section = "Body text about this section that goes on for a while. " * 6
    text = "\n\n".join(f"# Section {i}\n\n{section}" for i in range(6))
    chunks = Chunker(tokenizer, max_tokens=90, overlap=0).split(text, markdown=True)
    assert all(chunk.text.startswith("# Section") for chunk in chunks)


def test_splitting_does_not_mutate_the_tokenizer(tokenizer: Tokenizer) -> None:
    before = tokenizer.truncation
    Chunker(tokenizer)
    assert tokenizer.truncation == before


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_sizes_are_refused(tokenizer: Tokenizer, max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="must"):
        Chunker(tokenizer, max_tokens=max_tokens, overlap=overlap)


GUIDE = """Operations guide
================

Intro to operating it.

Backups
-------

{body}

# Appendix

## Ports

The API listens on 8000.
"""


def test_each_chunk_carries_the_headings_above_it(tokenizer: Tokenizer) -> None:
    body = "Copy the data directory while the server is stopped, then check it. " * 12
    text = GUIDE.format(body=body)
    chunks = Chunker(tokenizer, max_tokens=60, overlap=0).split(text, markdown=True)
    by_text = {chunk.text.split("\n")[0]: chunk for chunk in chunks}
    backups = [c for c in chunks if c.text.startswith("Copy the data")]
    assert backups, [c.text for c in chunks]
    for chunk in backups:
        assert chunk.heading == "Operations guide > Backups"
        assert chunk.embedded_text == f"Operations guide > Backups\n\n{chunk.text}"
    ports = next(c for c in chunks if "8000" in c.text)
    assert ports.heading in ("Appendix", "Appendix > Ports")
    # A chunk that opens with its own heading does not repeat it.
    assert by_text["Operations guide"].heading == ""


def test_heading_paths_can_be_switched_off(tokenizer: Tokenizer) -> None:
    text = GUIDE.format(body="Copy the data directory. " * 40)
    chunks = Chunker(tokenizer, max_tokens=60, overlap=0, heading_context=False).split(text)
    assert all(chunk.heading == "" for chunk in chunks)
    assert all(chunk.embedded_text == chunk.text for chunk in chunks)


@pytest.mark.parametrize(
    "text",
    [
        "A line of prose\n---\nmore prose",  # a short rule under a long line
        "- a list item\n-----------\n",
        "| a | table |\n=============\n",
    ],
)
def test_dividers_lists_and_tables_are_not_headings(text: str) -> None:
    assert headings(text) == []
