"""The generation benchmark's pure parts: corpus chunking, request building, statistics."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
import torch

from bench.generation_stats import Record, percentile, ratios, summarise
from bench.generation_systems import RowBudget, output_length
from bench.generation_workload import (
    Passage,
    build_requests,
    chunk_text,
    load_corpus,
    poisson_offsets,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from inference import ChatMessage


def words(text: str) -> int:
    return len(text.split())


def render_words(messages: Sequence[ChatMessage]) -> list[int]:
    """A stand-in chat template: one token per word of every message."""
    return [0] * sum(words(m.content) + 2 for m in messages)


def test_chunk_text_packs_paragraphs_between_the_bounds() -> None:
    text = "\n\n".join(" ".join(["w"] * 30) for _ in range(20))  # 600 words
    passages = chunk_text(text, words, min_tokens=100, max_tokens=250)
    assert [words(p) for p in passages] == [120] * 5
    assert "\n\n".join(passages).split() == text.split()


def test_chunk_text_cuts_an_overlong_paragraph_on_words() -> None:
    passages = chunk_text(" ".join(["w"] * 600), words, min_tokens=100, max_tokens=250)
    assert all(words(p) <= 250 for p in passages)
    assert sum(words(p) for p in passages) == 600


def test_the_python_reference_corpus_gives_real_passages() -> None:
    corpus = load_corpus(words)
    assert len({p.topic for p in corpus}) == 79
    assert all(words(p.text) <= 250 for p in corpus)


def test_build_requests_is_seeded_and_keeps_prompts_in_range() -> None:
    corpus = [Passage(f"t{t}", i, " ".join(["w"] * 150)) for t in range(5) for i in range(4)]
    first = build_requests(corpus, render_words, 20, seed=7, prefix="c8", max_tokens=(16, 256))
    again = build_requests(corpus, render_words, 20, seed=7, prefix="c8", max_tokens=(16, 256))
    assert first == again
    assert [r.rid for r in first[:2]] == ["c8-0000", "c8-0001"]
    assert all(200 <= len(r.prompt_ids) <= 1000 for r in first)
    assert all(16 <= r.max_tokens <= 256 for r in first)
    assert len({r.max_tokens for r in first}) > 5


def test_poisson_offsets_are_seeded_and_match_the_rate() -> None:
    offsets = poisson_offsets(2000, rate=4.0, seed=1)
    assert offsets == poisson_offsets(2000, rate=4.0, seed=1)
    assert offsets[0] == 0.0
    assert offsets == sorted(offsets)
    assert 2000 / offsets[-1] == pytest.approx(4.0, rel=0.1)


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile(values, 0.95) == pytest.approx(9.55)
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_summarise_counts_from_first_arrival_to_last_answer() -> None:
    records = [
        Record("a", 0.0, [1.0, 1.5, 2.0], done=2.0, completion_tokens=3, prompt_tokens=10),
        Record("b", 1.0, [3.0, 4.0], done=4.0, completion_tokens=2, prompt_tokens=20),
    ]
    s = summarise(records)
    assert s["wall_s"] == 4.0
    assert s["output_tokens_per_s"] == 1.25
    assert s["requests_per_s"] == 0.5
    assert s["ttft_s"] == {"p50": 1.5, "p95": 1.95, "p99": 1.99}
    assert s["itl_s"]["p50"] == 0.5  # type: ignore[index]
    assert s["latency_s"]["p50"] == 2.5  # type: ignore[index]


def test_ratios_put_the_engine_over_the_baseline() -> None:
    engine = summarise([Record("a", 0.0, [0.5, 1.0], done=1.0, completion_tokens=2)])
    baseline = summarise([Record("a", 0.0, [1.0, 2.0], done=2.0, completion_tokens=2)])
    r = ratios(engine, baseline)
    assert r["output_tokens_per_s"] == 2.0
    assert r["ttft_p95"] == 0.5
    assert r["itl_p50"] == 0.5


def test_output_length_stops_at_the_first_eos_or_the_budget() -> None:
    assert output_length([5, 6, 2, 2, 2], {2}, budget=10) == 3
    assert output_length([5, 6, 7, 8], {2}, budget=2) == 2
    assert output_length([5, 6], {2}, budget=8) == 2


def test_row_budget_stops_each_row_at_its_own_limit() -> None:
    stop = RowBudget(prompt_width=4, budgets=[1, 3])
    ids = torch.zeros((2, 5), dtype=torch.long)
    assert stop(ids, torch.zeros(2, 1)).tolist() == [True, False]  # type: ignore[arg-type]
