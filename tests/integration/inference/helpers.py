"""Helpers shared by the engine tests: waiting for a condition, the HF reference."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from collections.abc import Callable

    from inference import LoadedModel


async def eventually(condition: Callable[[], bool], within: float) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def hf_greedy(loaded: LoadedModel, prompt_ids: list[int], max_new_tokens: int) -> str:
    """What Hugging Face ``generate`` answers for the prompt alone, greedily."""
    with torch.inference_mode():
        output = loaded.model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    text: str = loaded.tokenizer.decode(output[0, len(prompt_ids) :], skip_special_tokens=True)
    return text
