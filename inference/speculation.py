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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

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
