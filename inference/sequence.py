"""One request's decoding state inside the batching engine's worker thread."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from inference.detokenizer import OutputStream
from inference.fair_queue import Ticket
from inference.request_slot import RequestSlot
from inference.types import Priority


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
        computed: Tokens of ``context`` whose keys and values are in the cache.
        generated: Generated token ids; the last one is fed at the next step.
        last_token_at: When the previous token was emitted (inter-token latency).
        context: The tokens to prefill before decoding: the prompt, and after a
            preemption the prompt plus every token generated before it.
        preemptions: How many times it gave its slot back (batch only).
        unverified: Guesses the speculation policy declined to verify, and how many
            tokens had been generated then, until the tokens since show how many
            would have been accepted (``RunningBatch``).
        biased: The prompt's token ids ``prompt_bias`` raises (``sampling.biased_tokens``).
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
    context: list[int] = field(default_factory=list)
    preemptions: int = 0
    unverified: tuple[int, list[int]] | None = None
    biased: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not self.context:
            self.context = self.prompt

    @property
    def prompt(self) -> list[int]:
        return self.slot.request.prompt_token_ids

    @property
    def batch(self) -> bool:
        return self.slot.request.priority is Priority.BATCH

    @property
    def prefilling(self) -> bool:
        return self.computed < len(self.context)

    def ticket(self) -> Ticket[Sequence]:
        """This sequence as it waits: to start, or to resume after a preemption."""
        request = self.slot.request
        return Ticket(
            key=request.request_id,
            tenant=request.tenant_id,
            prompt_tokens=len(self.prompt) + len(self.generated),
            kv_tokens=self.kv_tokens,
            deadline=request.deadline,
            item=self,
            priority=request.priority,
        )

    def preempt(self) -> None:
        """Forget the cached state; the next admission recomputes it from the tokens.

        NOTE: the context to recompute is the prompt plus *every* generated token,
        so the last prefill row yields the logits of the next token exactly where
        the interrupted decode step would have: nothing is sampled twice and nothing
        already streamed is emitted again. The detokenizer, the RNG and the count of
        completion tokens carry on untouched.
        """
        self.kv_slot = -1
        self.computed = 0
        self.context = self.prompt + self.generated
        self.preemptions += 1

    @property
    def next_position(self) -> int:
        """Position of the token fed at the next decode step (the last generated one)."""
        return len(self.prompt) + len(self.generated) - 1
