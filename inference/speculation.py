"""n-gram (prompt-lookup) speculative decoding: guess a greedy sequence's next tokens
from its own context.

RAG answers copy phrases of their sources, so the tokens that followed the latest
earlier occurrence of the answer's last few tokens are often the next ones. The
engine feeds the sequence's last token and up to ``k`` guesses as one chunk of
``k + 1`` rows; row ``j``'s logits give the token after guess ``j - 1``, so every
guess the model itself would have chosen is accepted, plus one more token, in one
forward pass. Greedy only, and only for a sequence decoding alone, where a step's
cost is reading the weights and more rows share that read.

The output is the one plain decoding gives, up to the rounding of a product over
more rows; with INT8 decode weights also up to the activations' scale, which the
chunk's rows share (as co-decoding rows do, ``int8_linear``). ``python -m
bench.speculation`` estimates what it saves, ``bench.serve`` measures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

LONGEST_MATCH = 3
"""The longest suffix of the context looked up (then shorter ones, down to 1)."""
SEARCH_TOKENS = 4096
"""How far back the lookup searches: a bound on its cost a step."""


def guess(tokens: Sequence[int], k: int) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the longest
    suffix (``LONGEST_MATCH`` tokens down to 1) of ``tokens``."""
    if k < 1:
        return []
    window = list(tokens[-SEARCH_TOKENS:])
    for size in range(LONGEST_MATCH, 0, -1):
        if len(window) <= size:
            continue
        tail = window[-size:]
        first = tail[0]
        for start in range(len(window) - size - 1, -1, -1):
            if window[start] == first and window[start : start + size] == tail:
                return window[start + size : start + size + k]
    return []
