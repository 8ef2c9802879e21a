"""A slot-based key/value cache, allocated once, shared by every running sequence."""

from __future__ import annotations

import heapq

import torch


class KVCache:
    """Keys and values of ``num_slots`` sequences of up to ``max_seq_len`` tokens each.

    ``keys`` and ``values`` are ``[layers, slots, kv_heads, max_seq_len, head_dim]``.
    A sequence owns one slot from admission to retirement; its tokens sit at
    positions ``0 .. length - 1`` of that slot.

    NOTE: the tensors come from ``torch.empty``, so the OS commits memory only for
    the pages a sequence actually writes: a large ``max_seq_len`` costs address
    space, not RAM, until long sequences use it. Memory the allocator hands back
    from earlier tensors may hold any bits, NaN included, and batched decode
    attention reads every slot up to the longest sequence's length (masked, but a
    NaN key times a masked weight is still NaN): ``ensure_finite`` zeroes what a
    step is about to read for the first time.

    Free slots are handed out lowest first, which keeps the busy slots packed at
    the front: batched decode attends over the slice ``[0, highest busy slot]``.
    """

    def __init__(
        self,
        num_layers: int,
        num_slots: int,
        kv_heads: int,
        max_seq_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        if num_slots < 1 or max_seq_len < 1:
            raise ValueError("num_slots and max_seq_len must be positive")
        shape = (num_layers, num_slots, kv_heads, max_seq_len, head_dim)
        self.keys = torch.empty(shape, dtype=dtype, device=device)
        self.values = torch.empty(shape, dtype=dtype, device=device)
        self.max_seq_len = max_seq_len
        self.num_slots = num_slots
        self._free = list(range(num_slots))
        heapq.heapify(self._free)
        self._busy: set[int] = set()
        self._finite = [0] * num_slots
        """Per slot, positions ``0 .. n - 1`` hold finite values (zeroed or written)."""

    @property
    def bytes_per_token(self) -> int:
        """Bytes one token's keys and values take over all layers."""
        layers, _, heads, _, dim = self.keys.shape
        return 2 * layers * heads * dim * self.keys.element_size()

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def span(self) -> int:
        """One past the highest busy slot (0 when none is busy)."""
        return max(self._busy) + 1 if self._busy else 0

    def allocate(self) -> int:
        """Take the lowest free slot.

        Raises:
            RuntimeError: Every slot is busy.
        """
        if not self._free:
            raise RuntimeError("no free KV slot")
        slot = heapq.heappop(self._free)
        self._busy.add(slot)
        return slot

    def release(self, slot: int) -> None:
        """Give ``slot`` back; its contents are simply overwritten later."""
        if slot in self._busy:
            self._busy.remove(slot)
            heapq.heappush(self._free, slot)

    def ensure_finite(self, slots: int, length: int) -> None:
        """Zero positions of slots ``0 .. slots - 1`` below ``length`` never zeroed or
        written before (attention reads them, masked); each position is zeroed once."""
        for slot in range(slots):
            start = self._finite[slot]
            if start < length:
                self.keys[:, slot, :, start:length] = 0
                self.values[:, slot, :, start:length] = 0
                self._finite[slot] = length

    def mark_written(self, slot: int, start: int, stop: int) -> None:
        """Positions ``[start, stop)`` of ``slot`` are (about to be) written.

        NOTE: a sequence writes its positions in order from 0, so its writes never
        leave a gap above what is already finite; one that would is not counted.
        """
        if start <= self._finite[slot]:
            self._finite[slot] = max(self._finite[slot], stop)

    def read(self, slot: int, start: int, stop: int) -> torch.Tensor:
        """A copy of positions ``[start, stop)`` of ``slot``: ``[2, layers, kv_heads, n, dim]``."""
        return torch.stack(
            (self.keys[:, slot, :, start:stop], self.values[:, slot, :, start:stop])
        ).clone()

    def write(self, slot: int, start: int, block: torch.Tensor) -> None:
        """Copy ``block`` (as ``read`` returns it) into ``slot`` from position ``start``."""
        stop = start + block.shape[3]
        self.keys[:, slot, :, start:stop] = block[0]
        self.values[:, slot, :, start:stop] = block[1]
        self.mark_written(slot, start, stop)
