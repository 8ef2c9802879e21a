"""What one engine step computes: its rows, flattened (decode rows, then chunks)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PrefillChunk:
    """``length`` tokens of the sequence in ``slot``, from position ``start``: prompt
    tokens, or with ``draft`` a decoding sequence's last token and guesses to verify
    (their rows take the decode rows' weights)."""

    slot: int
    start: int
    length: int
    draft: bool = False


@dataclass(slots=True)
class StepBatch:
    """The tokens of one engine step, flattened: decode tokens first, then prefill chunks.

    Attributes:
        token_ids: One id per row.
        positions: Each row's position in its sequence.
        decode_slots: The slot of each decode row (rows ``0 .. len - 1``).
        prefills: The prefill chunks, in row order after the decode rows.
        logit_rows: The rows whose next-token logits are wanted, in output order.
    """

    token_ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    decode_slots: list[int] = field(default_factory=list)
    prefills: list[PrefillChunk] = field(default_factory=list)
    logit_rows: list[int] = field(default_factory=list)

    def add_decode(self, slot: int, token_id: int, position: int) -> int:
        """Add a decode row (before any prefill chunk); return its row index."""
        if self.prefills:
            raise ValueError("decode rows must come before prefill chunks")
        self.token_ids.append(token_id)
        self.positions.append(position)
        self.decode_slots.append(slot)
        return len(self.token_ids) - 1

    def add_prefill(self, slot: int, token_ids: list[int], start: int, draft: bool = False) -> int:
        """Add a prefill chunk; return the row index of its last token.

        A ``draft`` chunk (speculative decoding) must come before any prompt chunk.
        """
        if draft and any(not chunk.draft for chunk in self.prefills):
            raise ValueError("draft chunks must come before prompt chunks")
        self.token_ids.extend(token_ids)
        self.positions.extend(range(start, start + len(token_ids)))
        self.prefills.append(PrefillChunk(slot, start, len(token_ids), draft))
        return len(self.token_ids) - 1
