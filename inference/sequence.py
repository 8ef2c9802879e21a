"""One request's decoding state inside the batching engine's worker thread."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from inference.detokenizer import OutputStream
from inference.request_slot import RequestSlot


@dataclass(eq=False, slots=True)
class Sequence:
    """A request from admission to retirement; touched by the worker thread only.

    Attributes:
        slot: The request and its event channel to the caller.
        stream: Detokenizer and stop-string matcher.
        generator: The request's RNG (``None`` when greedy).
        submitted: ``time.monotonic()`` at submission.
        kv_slot: Its KV-cache slot once admitted (``-1`` before).
        kv_tokens: KV-cache tokens it reserves (prompt plus ``max_tokens``).
        computed: Prompt tokens whose keys and values are in the cache.
        generated: Generated token ids; the last one is fed at the next step.
        last_token_at: When the previous token was emitted (inter-token latency).
    """

    slot: RequestSlot
    stream: OutputStream
    generator: torch.Generator | None
    submitted: float = field(default_factory=time.monotonic)
    kv_slot: int = -1
    kv_tokens: int = 0
    computed: int = 0
    generated: list[int] = field(default_factory=list)
    last_token_at: float = 0.0

    @property
    def prompt(self) -> list[int]:
        return self.slot.request.prompt_token_ids

    @property
    def prefilling(self) -> bool:
        return self.computed < len(self.prompt)

    @property
    def next_position(self) -> int:
        """Position of the token fed at the next decode step (the last generated one)."""
        return len(self.prompt) + len(self.generated) - 1
