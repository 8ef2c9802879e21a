"""The CPU dtype probe: real products on this machine, and the choice it makes from them."""

from __future__ import annotations

import math

import pytest
import torch

from inference import cpu_dtype
from inference.errors import ModelLoadError
from inference.loader import resolve_dtype


def test_probe_times_both_dtypes_and_chooses_the_quicker_turn() -> None:
    measured = cpu_dtype.probe(repeats=1)

    assert set(measured.prompt_ms) == set(measured.decode_ms) == {"float32", "bfloat16"}
    for name in ("float32", "bfloat16"):
        assert 0 < measured.decode_ms[name] < measured.prompt_ms[name] < 10_000
        assert math.isclose(
            measured.turn_ms[name],
            cpu_dtype.turn_ms(measured.prompt_ms[name], measured.decode_ms[name]),
        )
    quicker = min(measured.turn_ms, key=measured.turn_ms.__getitem__)
    assert str(measured.chosen).removeprefix("torch.") == quicker


def test_the_turn_weighs_two_prompt_chunks_and_sixty_four_tokens() -> None:
    assert cpu_dtype.turn_ms(prompt_ms=10.0, decode_ms=0.5) == 2 * 10.0 + 64 * 0.5


def test_choose_takes_the_quicker_and_fp32_on_a_tie() -> None:
    assert cpu_dtype.choose({torch.float32: 40.0, torch.bfloat16: 25.0}) == torch.bfloat16
    assert cpu_dtype.choose({torch.float32: 40.0, torch.bfloat16: 140.0}) == torch.float32
    assert cpu_dtype.choose({torch.bfloat16: 30.0, torch.float32: 30.0}) == torch.float32


def test_auto_on_the_cpu_is_the_measured_choice_once_a_process() -> None:
    first = resolve_dtype("auto", "cpu")

    assert first in cpu_dtype.CANDIDATES
    assert resolve_dtype("auto", "cpu") is first
    assert cpu_dtype.fastest_cpu_dtype.cache_info().currsize == 1


def test_named_dtypes_skip_the_probe_and_unknown_names_are_refused() -> None:
    assert resolve_dtype("fp32", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype 'int3'"):
        resolve_dtype("int3", "cpu")
