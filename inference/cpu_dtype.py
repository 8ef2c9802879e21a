"""Which float dtype the model runs in on a CPU, chosen by timing both, not by flags.

Machines of one kind differ: with AMX, bf16 products are several times fp32's;
with AVX2 alone, torch emulates bf16 and a prompt chunk's product takes 8x fp32's
(AMD EPYC, 2 cores, idle: 25.0 against 3.1 ms for 256 rows through a 576x1536
weight), though a decode row, which only streams the weights, is 2.6x faster in
bf16 (0.13 against 0.33 ms: half the bytes, oneDNN's packed product). So
``dtype="auto"`` times both on the shapes the engine runs (``probe``) and takes the
dtype that serves a typical RAG turn sooner: a 512-token prompt and 64 answer tokens.

The probe runs once a process (0.2-0.3 s on that EPYC) and is logged with the
CPU's flags.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
import torch

from inference.packed_linear import linear
from kernel.cpu import cpu_flags

if TYPE_CHECKING:
    from collections.abc import Callable

logger = structlog.get_logger(__name__)

CANDIDATES = (torch.float32, torch.bfloat16)

IN_FEATURES, OUT_FEATURES = 576, 1536
"""SmolLM2-135M's MLP projection: the shape most of a step's work has."""

PROMPT_ROWS = 256
"""Rows of one prompt chunk (the engine's prefill chunk)."""

DECODE_WEIGHTS = 12
"""Weights a decode probe streams through, so that they do not all sit in cache
(12 x 3.5 MB in fp32), as a model's 121 do not."""

TURN_CHUNKS, TURN_TOKENS = 2, 64
"""The turn the choice weighs: two prompt chunks (512 tokens) and 64 decode steps."""


@dataclass(frozen=True, slots=True)
class DtypeProbe:
    """What the probe measured (best of its repeats, milliseconds) and chose.

    Attributes:
        prompt_ms: One ``PROMPT_ROWS``-row product, by dtype name.
        decode_ms: One row through one weight (streamed), by dtype name.
        turn_ms: The weighed turn's products, by dtype name.
        chosen: The dtype with the smallest ``turn_ms``.
    """

    prompt_ms: dict[str, float]
    decode_ms: dict[str, float]
    turn_ms: dict[str, float]
    chosen: torch.dtype


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _best_ms(run: Callable[[], object], repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def turn_ms(prompt_ms: float, decode_ms: float) -> float:
    """The weighed turn: ``TURN_CHUNKS`` prompt products and ``TURN_TOKENS`` decode rows."""
    return TURN_CHUNKS * prompt_ms + TURN_TOKENS * decode_ms


def choose(turns: dict[torch.dtype, float]) -> torch.dtype:
    """The dtype whose turn is quickest; fp32 on a tie (it is exact to the weights)."""
    return min(turns, key=lambda dtype: (turns[dtype], dtype != torch.float32))


def _time(
    dtype: torch.dtype, weights: list[torch.Tensor], prompt: torch.Tensor, repeats: int
) -> tuple[float, float]:
    """(one prompt chunk's product, one decode row's product) in ``dtype``, in ms."""
    products = [linear(w.to(dtype)) for w in weights]
    x, row = prompt.to(dtype), prompt[:1].to(dtype)

    def decode() -> None:
        for product in products:
            product(row)

    with torch.inference_mode():
        return (
            _best_ms(lambda: products[0](x), repeats),
            _best_ms(decode, repeats) / len(products),
        )


def probe(repeats: int = 3) -> DtypeProbe:
    """Time a prompt chunk's and a decode row's product in each candidate dtype.

    The products are the engine's own (``packed_linear.linear``: oneDNN-packed in
    bf16, ``F.linear`` in fp32), on random weights of the model's MLP shape.
    """
    generator = torch.Generator().manual_seed(0)
    weights = [
        torch.randn(OUT_FEATURES, IN_FEATURES, generator=generator) / IN_FEATURES**0.5
        for _ in range(DECODE_WEIGHTS)
    ]
    prompt = torch.randn(PROMPT_ROWS, IN_FEATURES, generator=generator)
    prompt_ms: dict[str, float] = {}
    decode_ms: dict[str, float] = {}
    turns: dict[torch.dtype, float] = {}
    for dtype in CANDIDATES:
        name = _name(dtype)
        prompt_ms[name], decode_ms[name] = _time(dtype, weights, prompt, repeats)
        turns[dtype] = turn_ms(prompt_ms[name], decode_ms[name])
    return DtypeProbe(
        prompt_ms=prompt_ms,
        decode_ms=decode_ms,
        turn_ms={_name(d): t for d, t in turns.items()},
        chosen=choose(turns),
    )


@functools.cache
def fastest_cpu_dtype() -> torch.dtype:
    """The probe's choice, measured once a process and logged."""
    measured = probe()
    logger.info(
        "cpu_dtype_chosen",
        dtype=_name(measured.chosen),
        turn_ms={k: round(v, 2) for k, v in measured.turn_ms.items()},
        prompt_ms={k: round(v, 2) for k, v in measured.prompt_ms.items()},
        decode_ms={k: round(v, 3) for k, v in measured.decode_ms.items()},
        cpu_flags=sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}),
    )
    return measured.chosen
