"""A turn's sampling: the prompt bias applies only where the prompt holds sources."""

from __future__ import annotations

from typing import Any

import pytest

from app.chat.prompt import Source
from app.chat.sampling import with_sources
from app.chat.turn import PipelineConfig
from inference import SamplingParams

SOURCE = Source(1, "c", "d", "guide.md", "default", 0, 0.9, "Send cancel to stop a turn.")


def test_the_prompt_bias_applies_only_with_sources() -> None:
    sampling = SamplingParams(max_tokens=32, temperature=0.3)
    biased = PipelineConfig(prompt_bias=2.0)
    assert with_sources(sampling, [SOURCE], biased) == SamplingParams(
        max_tokens=32, temperature=0.3, prompt_bias=2.0
    )
    assert with_sources(sampling, [], biased) is sampling
    assert with_sources(sampling, [SOURCE], PipelineConfig()) is sampling


@pytest.mark.parametrize(
    "bad", [{"no_repeat_ngram": 1}, {"repetition_penalty": 0.5}, {"prompt_bias": 11.0}]
)
def test_a_default_sampling_no_turn_could_use_is_refused_at_start_up(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="default sampling") as info:
        PipelineConfig(**bad)
    assert next(iter(bad)) in str(info.value)
