"""Reuse the KV state of shared prompt prefixes, in fixed-size token blocks.

A prompt is cut into blocks of ``block_size`` tokens; each full block is keyed by
a chain hash of its tokens and every token before it, so a hit on block ``i``
means the whole prefix up to it is the same and its keys and values are the very
computation a fresh prefill would do. Blocks live in an LRU bounded by bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class _Entry:
    tokens: tuple[int, ...]
    block: torch.Tensor
    nbytes: int


class PrefixCache:
    """An LRU of KV blocks keyed by prefix hash.

    Args:
        block_size: Tokens per block.
        capacity_bytes: Most bytes of blocks kept; 0 disables the cache.
    """

    def __init__(self, block_size: int = 32, capacity_bytes: int = 256 << 20) -> None:
        if block_size < 1:
            raise ValueError("block_size must be positive")
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must not be negative")
        self.block_size = block_size
        self.capacity_bytes = capacity_bytes
        self._blocks: OrderedDict[int, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._blocks)

    def block_hashes(self, token_ids: Sequence[int], max_blocks: int | None = None) -> list[int]:
        """Chain hashes of the full blocks of ``token_ids`` (at most ``max_blocks``).

        NOTE: Python's hash of a tuple of ints is stable within a process, which is
        as long as the cache lives; the block's tokens are stored and compared too,
        so a collision can only come from the parent hash (2**-64).
        """
        count = len(token_ids) // self.block_size
        if max_blocks is not None:
            count = min(count, max_blocks)
        hashes: list[int] = []
        parent = 0
        for i in range(count):
            tokens = tuple(token_ids[i * self.block_size : (i + 1) * self.block_size])
            parent = hash((parent, tokens))
            hashes.append(parent)
        return hashes

    def match(self, token_ids: Sequence[int], hashes: Sequence[int]) -> list[torch.Tensor]:
        """The cached blocks of the longest cached prefix, in order (marked recently used)."""
        found: list[torch.Tensor] = []
        for i, key in enumerate(hashes):
            entry = self._blocks.get(key)
            start = i * self.block_size
            if entry is None or entry.tokens != tuple(token_ids[start : start + self.block_size]):
                break
            self._blocks.move_to_end(key)
            found.append(entry.block)
        return found

    def __contains__(self, key: int) -> bool:
        return key in self._blocks

    def insert(self, key: int, tokens: Sequence[int], block: torch.Tensor) -> None:
        """Keep ``block`` under ``key``, evicting the least recently used blocks to fit."""
        nbytes = block.numel() * block.element_size()
        if nbytes > self.capacity_bytes:
            return
        old = self._blocks.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        while self._bytes + nbytes > self.capacity_bytes:
            _, evicted = self._blocks.popitem(last=False)
            self._bytes -= evicted.nbytes
        self._blocks[key] = _Entry(tuple(tokens), block, nbytes)
        self._bytes += nbytes

    def clear(self) -> None:
        self._blocks.clear()
        self._bytes = 0
