"""n-gram (prompt-lookup) speculative decoding: guess a sequence's next tokens from
its own context.

RAG answers copy phrases of their sources, so the tokens that followed the latest
earlier occurrence of the answer's last few tokens are often the next ones. The
engine feeds the sequence's last token and up to ``k`` guesses as one chunk of
``k + 1`` rows; row ``j``'s logits give the token after guess ``j - 1``, so every
guess the model itself would have chosen is accepted, plus one more token, in one
forward pass. Only for a sequence decoding alone, where a step's cost is reading
the weights and more rows share that read; a sampled one keeps each guess with the
probability the model gives it (speculative sampling, ``sampling.sample_next``).

The output is the one plain decoding gives, up to the rounding of a product over
more rows; with INT8 decode weights also up to the activations' scale, which the
chunk's rows share (as co-decoding rows do, ``int8_linear``). ``python -m
bench.speculation`` estimates what it saves, ``bench.serve`` measures it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

LONGEST_MATCH = 3
"""The longest suffix of the context looked up (then shorter ones, down to 1)."""
SEARCH_TOKENS = 4096
"""How far back the lookup searches: a bound on its cost a step."""


def guess(tokens: Sequence[int], k: int) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the longest
    suffix (``LONGEST_MATCH`` tokens down to 1) of ``tokens``.

    One backward pass over the last ``SEARCH_TOKENS`` (a step's cost, on the hot
    path): every earlier position holding the last token is a candidate end of a
    match, scored by how many tokens before it match too.
    """
    window = tokens[-SEARCH_TOKENS:]
    n = len(window)
    if k < 1 or n < 2:
        return []
    last = window[-1]
    best_end, best = -1, 0
    for end in range(n - 2, -1, -1):
        if window[end] != last:
            continue
        size = 1
        while size < LONGEST_MATCH and size <= end and window[end - size] == window[n - 1 - size]:
            size += 1
        if size > best:
            best_end, best = end, size
            if size == LONGEST_MATCH:
                break
    return list(window[best_end + 1 : best_end + 1 + k]) if best else []


class SpeculationPolicy:
    """Whether a lone sequence's guesses are worth a verifying pass, by measurement.

    A verifying pass of ``k + 1`` rows costs more than a one-row step, by how much
    depends on the CPU, the weights (INT8 products grow with rows, packed bf16 ones
    barely) and the thread count; it yields one token plus the guesses accepted,
    which depend on the request (a sampled one keeps fewer). So the policy keeps a
    moving average of a lone step's seconds per row count, and of the guesses
    accepted per verifying pass for greedy and for sampled requests, and verifies
    when ``(1 + accepted) * one_row_step > pass``. A cost not yet measured is
    measured first. While verifying is off, the guesses it declined are scored
    against the tokens decoded after them (``observed``), so acceptance stays
    measured; after ``explore`` lone steps without verifying it verifies once, so a
    change in a pass's cost is seen.

    Worker thread only.
    """

    def __init__(self, alpha: float = 0.15, explore: int = 32) -> None:
        self._alpha = alpha
        self._explore = explore
        self._seconds: dict[int, float] = {}
        self._accepted: dict[bool, float] = {}
        self._skipped = 0

    def verify(self, greedy: bool, rows: int) -> bool:
        """Whether to verify ``rows - 1`` guesses of a lone greedy (or sampled)
        sequence now, rather than decode one row."""
        one, more = self._seconds.get(1), self._seconds.get(rows)
        if one is None:
            return False  # time a plain step first
        accepted = self._accepted.get(greedy)
        if more is None or accepted is None or self._skipped >= self._explore:
            return True
        if (1.0 + accepted) * one > more:
            return True
        self._skipped += 1
        return False

    @contextmanager
    def timing(self, rows: int) -> Iterator[None]:
        """Time a step of ``rows`` lone rows (0: not a lone sequence's step, untimed)."""
        started = time.perf_counter()
        yield
        if rows:
            self.timed(rows, time.perf_counter() - started)

    def timed(self, rows: int, seconds: float) -> None:
        """A lone sequence's step took ``seconds``: one decode row, or a verifying
        pass of ``rows`` rows."""
        self._seconds[rows] = self._average(self._seconds.get(rows), seconds)

    def verified(self, greedy: bool, accepted: int) -> None:
        """A verifying pass of a greedy (or sampled) sequence accepted ``accepted``."""
        self.observed(greedy, accepted)
        self._skipped = 0

    def observed(self, greedy: bool, accepted: int) -> None:
        """Guesses not verified would have had ``accepted`` accepted (the tokens
        decoded since say so), so acceptance stays measured while verifying is off."""
        self._accepted[greedy] = self._average(self._accepted.get(greedy), float(accepted))

    def measured(self) -> tuple[dict[int, float], dict[bool, float]]:
        """Copies of the averages: seconds per lone step by rows, and guesses accepted
        per verifying pass for greedy (``True``) and sampled requests."""
        return dict(self._seconds), dict(self._accepted)

    def _average(self, old: float | None, new: float) -> float:
        return new if old is None else old + self._alpha * (new - old)
