"""The batching engine's running batch: its sequences, the KV-cache room they hold,
and the rows each feeds to the next forward pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from inference.scheduler import plan_prefill
from inference.sequence import Sequence as Seq
from inference.speculation import SpeculationPolicy, guess
from inference.step_batch import StepBatch

if TYPE_CHECKING:
    from collections.abc import Iterator

    from inference.kv_cache import KVCache
    from inference.prefix_cache import PrefixCache


@dataclass(slots=True)
class Step:
    """One forward pass to run.

    Attributes:
        batch: Its rows.
        sampled: The sequences to sample for, in ``batch.logit_rows`` order.
        guesses: Each sampled sequence's guessed tokens (speculative decoding; mostly
            none): it has one logits row more than guesses.
        prefilled: The sequences whose context this step completes.
    """

    batch: StepBatch = field(default_factory=StepBatch)
    sampled: list[Seq] = field(default_factory=list)
    guesses: list[list[int]] = field(default_factory=list)
    prefilled: list[Seq] = field(default_factory=list)

    def lone_rows(self) -> int:
        """The rows of a lone sequence's step: 1 for a decode row, k + 1 for a
        verifying pass; 0 for any other step."""
        batch = self.batch
        if len(batch.decode_slots) == 1 and not batch.prefills:
            return 1
        lone_draft = len(batch.prefills) == 1 and batch.prefills[0].draft
        return batch.prefills[0].length if lone_draft and not batch.decode_slots else 0

    def outputs(self, logits: torch.Tensor) -> Iterator[tuple[Seq, list[int], torch.Tensor]]:
        """Each sampled sequence with its guesses and its rows of ``logits``."""
        row = 0
        for seq, guessed in zip(self.sampled, self.guesses, strict=True):
            yield seq, guessed, logits[row : row + len(guessed) + 1]
            row += len(guessed) + 1


IDLE_PREFILL_CHUNKS = 4
"""While no sequence decodes, a step prefills up to this many chunks' worth."""


class RunningBatch:
    """The running sequences, each holding one KV-cache slot and reserving its prompt
    plus ``max_tokens`` of the KV budget, from admission to retirement or preemption.

    Worker thread only. Iterating gives a snapshot, so sequences may leave meanwhile.

    Args:
        cache: The slot-based KV cache; one slot per running sequence.
        prefix: Shared-prefix blocks: copied into a new sequence's slot, and filled
            from the prompts of sequences that complete their prefill.
        kv_budget: KV-cache tokens all running sequences may reserve together.
        speculation: Decides whether a lone sequence's guesses are worth verifying
            (``None``: always).
    """

    def __init__(
        self,
        cache: KVCache,
        prefix: PrefixCache,
        kv_budget: int,
        speculation: SpeculationPolicy | None = None,
    ) -> None:
        self._cache = cache
        self._policy = speculation
        self._prefix = prefix
        self._kv_budget = kv_budget
        self._seqs: list[Seq] = []
        self._reserved = 0

    def __len__(self) -> int:
        return len(self._seqs)

    def __iter__(self) -> Iterator[Seq]:
        """The running sequences, oldest admission first."""
        return iter(list(self._seqs))

    @property
    def free_slots(self) -> int:
        return self._cache.num_slots - len(self._seqs)

    @property
    def free_kv_tokens(self) -> int:
        """KV-cache tokens no running sequence reserves."""
        return self._kv_budget - self._reserved

    def add(self, seq: Seq) -> None:
        """Give ``seq`` a slot and copy in the longest cached prefix of its context."""
        seq.kv_slot = self._cache.allocate()
        self._reserved += seq.kv_tokens
        self._seqs.append(seq)
        context, size = seq.context, self._prefix.block_size
        # At least the last context token must be computed: its logits give the next token.
        blocks = self._prefix.match(
            context, self._prefix.block_hashes(context, (len(context) - 1) // size)
        )
        if blocks:
            self._cache.write(seq.kv_slot, 0, torch.cat(blocks, dim=3))
            seq.computed = len(blocks) * size

    def remove(self, seq: Seq) -> None:
        """Free ``seq``'s slot and KV room; nothing if it is not running."""
        if seq in self._seqs:
            self._seqs.remove(seq)
            self._cache.release(seq.kv_slot)
            self._reserved -= seq.kv_tokens

    def next_step(
        self, prefill_budget: int, batch_prefill_cap: int | None = None, speculate: int = 0
    ) -> Step:
        """The rows of the next forward pass: one decode row per decoding sequence, then
        prefill chunks within ``prefill_budget`` tokens (``IDLE_PREFILL_CHUNKS`` times
        that while nothing decodes); advances each ``computed``.

        With ``speculate``, a sequence decoding alone (greedy, or sampled without a
        seed) feeds its last token and up to that many guesses
        (``inference.speculation``) as a draft chunk instead, where the policy finds
        that faster: alone, a step's cost is reading the weights, which rows share.

        NOTE: online sequences' prefill comes first (oldest first), so batch-priority
        prefill gets only what the budget leaves over, and at most
        ``batch_prefill_cap`` tokens while any online sequence runs: a long batch
        prompt would otherwise slow every online decode step by a whole chunk.
        """
        step = Step()
        batch = step.batch
        guessed = self._guesses(speculate)
        for seq in self._seqs:
            if not seq.prefilling and not guessed:
                batch.logit_rows.append(
                    batch.add_decode(seq.kv_slot, seq.generated[-1], seq.next_position)
                )
                step.sampled.append(seq)
                step.guesses.append([])
        if guessed:
            seq = self._seqs[0]
            chunk = [seq.generated[-1], *guessed]
            last = batch.add_prefill(seq.kv_slot, chunk, seq.next_position, draft=True)
            batch.logit_rows.extend(range(last - len(guessed), last + 1))
            step.sampled.append(seq)
            step.guesses.append(guessed)
        if all(s.prefilling for s in self._seqs):
            # NOTE: nothing decodes, so no one waits on this step: one big pass reads
            # the weights once for more prompt rows (4 prompts of 450 tokens: 857 ms
            # in 256-token steps, 582 ms in 1,024-token ones, on 2 AMX Xeon cores).
            prefill_budget *= IDLE_PREFILL_CHUNKS
        online = [s for s in self._seqs if s.prefilling and not s.batch]
        offline = [s for s in self._seqs if s.prefilling and s.batch]
        plan = plan_prefill([len(s.context) - s.computed for s in online], prefill_budget)
        left = prefill_budget - sum(plan)
        if batch_prefill_cap is not None and any(not s.batch for s in self._seqs):
            left = min(left, batch_prefill_cap)
        plan += plan_prefill([len(s.context) - s.computed for s in offline], left)
        prefilling = online + offline
        for seq, take in zip(prefilling, plan, strict=True):
            if take == 0:
                continue
            start = seq.computed
            row = batch.add_prefill(seq.kv_slot, seq.context[start : start + take], start)
            seq.computed += take
            if not seq.prefilling:
                batch.logit_rows.append(row)
                step.sampled.append(seq)
                step.guesses.append([])
                step.prefilled.append(seq)
        return step

    def _guesses(self, speculate: int) -> list[int]:
        """The guesses of the one running sequence (none else): at most
        ``speculate``, and fewer than the tokens it may still make; none where the
        policy finds verifying them slower than a plain step.

        NOTE: none for a seeded sampled request: verifying draws its random numbers
        in another order, and its seed promises the same text whether it runs alone
        or beside others.
        """
        if speculate < 1 or len(self._seqs) != 1 or self._seqs[0].prefilling:
            return []
        seq = self._seqs[0]
        sampling = seq.slot.request.sampling
        left = sampling.max_tokens - seq.slot.completion_tokens
        if (not sampling.greedy and sampling.seed is not None) or left < 2:
            return []
        self._score_unverified(seq)
        guessed = guess(seq.prompt + seq.generated, min(speculate, left - 1))
        if not guessed or self._policy is None:
            return guessed
        if self._policy.verify(sampling.greedy, len(guessed) + 1):
            self._score_unverified(seq, final=True)
            return guessed
        if seq.unverified is None:
            seq.unverified = (len(seq.generated), guessed)
        return []

    def _score_unverified(self, seq: Seq, final: bool = False) -> None:
        """Tell the policy how many of the guesses it declined came true, once the
        tokens since show it (or, ``final``, as many as have so far): for a sampled
        sequence too, a verifying pass keeps a guess exactly when the token drawn
        equals it."""
        if seq.unverified is None or self._policy is None:
            return
        start, guessed = seq.unverified
        came = seq.generated[start : start + len(guessed)]
        matched = 0
        while matched < len(came) and came[matched] == guessed[matched]:
            matched += 1
        if final or matched < len(came) or len(came) == len(guessed):
            self._policy.observed(seq.slot.request.sampling.greedy, matched)
            seq.unverified = None

    def remember_prefix(self, seq: Seq) -> None:
        """Put the full prompt blocks of freshly prefilled ``seq`` into the prefix cache."""
        if self._prefix.capacity_bytes == 0:
            return
        size = self._prefix.block_size
        for i, key in enumerate(self._prefix.block_hashes(seq.prompt)):
            if key not in self._prefix:
                start = i * size
                block = self._cache.read(seq.kv_slot, start, start + size)
                self._prefix.insert(key, seq.prompt[start : start + size], block)
