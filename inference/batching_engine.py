"""The continuous-batching engine (docs/engine.md): many requests share every forward pass.

Each step of the worker thread admits waiting requests (online before batch,
round-robin over tenants within each class, within the slot and KV-cache budgets,
preempting batch sequences an online request needs room from), computes a bounded
chunk of new prompts, runs one decode token for every running sequence (or checks a
lone one's guesses) in the same forward pass, streams each new token to its request
and retires finished sequences at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog

from inference.batch_forward import LlamaBatchForward
from inference.detokenizer import OutputStream
from inference.engine_support import check_request
from inference.errors import EngineOverloadedError, EngineUnavailableError, InvalidRequestError
from inference.int8_linear import check_decode_weights
from inference.metrics import engine_metrics
from inference.prefix_cache import PrefixCache
from inference.request_slot import RequestSlot
from inference.running_batch import RunningBatch
from inference.sampling import biased_tokens, make_generator, sample_next
from inference.scheduler import Scheduler
from inference.sequence import Sequence as Seq
from inference.speculation import SpeculationPolicy
from inference.step_attention import check_attention, load_attention
from inference.threaded_engine import Loader, ThreadedEngine
from inference.types import FinishReason, GenerationRequest, Priority

if TYPE_CHECKING:
    import torch
    from prometheus_client import CollectorRegistry

    from inference.loader import LoadedModel

logger = structlog.get_logger(__name__)


class BatchingEngine(ThreadedEngine):
    """Generate for many requests at once with iteration-level batching.

    Args:
        loader: Returns the model to serve (the load parameters below then unused).
        model_path, cache_dir, dtype, device: See ``load_model`` (``model_path``
            ``None`` is the packaged SmolLM2).
        threads: Intra-op threads for the worker; ``None`` keeps torch's default.
        max_running: Most sequences in the running batch (KV-cache slots).
        max_waiting: Most online requests waiting to start (``EngineOverloadedError``).
        max_waiting_tokens: Most online prompt tokens waiting, all requests together.
        max_batch_share: The share of ``max_running`` batch sequences may hold (at
            least one slot), so online requests mostly find one without preempting.
        max_waiting_batch, max_waiting_batch_tokens: The same bounds for batch
            requests, counted apart; ``None`` takes the online ones.
        prefill_chunk_tokens: Prompt tokens a step computes, all new sequences together.
        batch_prefill_tokens: Of those, the most batch prompts get while online ones run.
        batch_slots_under_load: Batch sequences newly admitted only while fewer run,
            as long as any online request runs or waits: every row slows the step.
        max_seq_len: Most tokens (prompt plus ``max_tokens``) per sequence (KV slot size).
        kv_cache_tokens: KV-cache tokens running sequences may reserve in all (prompt plus
            ``max_tokens`` each); ``None``: ``max_running * max_seq_len``.
        max_context_tokens: Optional further cap on prompt plus ``max_tokens``.
        prefix_cache_bytes, prefix_block_tokens: The prefix cache's bytes (0: off) and block.
        decode_weights: ``"int8"``: decode rows on INT8 copies (``int8_linear``), ``"int4"``
            also on 4-bit ones in steps of a few rows (``int4_linear``).
        decode_attention, prefill_attention: ``"auto"``, ``"kernel"`` or ``"sdpa"``
            (``decode_attention``, ``prefill_attention``; built under ``cache_dir``).
        speculate_tokens: Guesses a lone request checks a step (``inference.speculation``); 0: off.
        registry: Where the metrics go; ``None`` is the default registry.
    """

    thread_name = "ragserve-batching-engine"

    def __init__(
        self,
        loader: Loader | None = None,
        *,
        model_path: str | None = None,
        cache_dir: Path = Path("data/models"),
        dtype: str = "auto",
        device: str = "cpu",
        threads: int | None = None,
        max_running: int = 32,
        max_waiting: int = 256,
        max_waiting_tokens: int = 262_144,
        max_batch_share: float = 0.5,
        max_waiting_batch: int | None = None,
        max_waiting_batch_tokens: int | None = None,
        prefill_chunk_tokens: int = 256,
        batch_prefill_tokens: int = 32,
        batch_slots_under_load: int = 2,
        max_seq_len: int = 2048,
        kv_cache_tokens: int | None = None,
        max_context_tokens: int | None = None,
        prefix_cache_bytes: int = 256 << 20,
        prefix_block_tokens: int = 32,
        decode_weights: Literal["model", "int8", "int4"] = "model",
        decode_attention: Literal["auto", "kernel", "sdpa"] = "auto",
        prefill_attention: Literal["auto", "kernel", "sdpa"] = "auto",
        speculate_tokens: int = 0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_running < 1 or prefill_chunk_tokens < 1 or max_seq_len < 2:
            raise ValueError("max_running, prefill_chunk_tokens and max_seq_len must be positive")
        if not 0 <= speculate_tokens <= 16 or not 0.0 < max_batch_share <= 1.0:
            raise ValueError("speculate_tokens must be in 0..16 and max_batch_share in (0, 1]")
        check_decode_weights(decode_weights)
        check_attention(decode_attention, prefill_attention)
        super().__init__(
            loader,
            model_path=model_path,
            cache_dir=cache_dir,
            dtype=dtype,
            device=device,
            threads=threads,
            max_context_tokens=max_context_tokens,
        )
        self._max_running = max_running
        self._max_batch_running = max(1, int(max_running * max_batch_share))
        self._chunk, self._batch_chunk = prefill_chunk_tokens, batch_prefill_tokens
        self._speculate, self._policy = speculate_tokens, SpeculationPolicy()
        self._batch_busy, self._max_seq_len = max(1, batch_slots_under_load), max_seq_len
        self._kv_budget = max_running * max_seq_len if kv_cache_tokens is None else kv_cache_tokens
        self._scheduler: Scheduler[Seq] = Scheduler(
            max_waiting, max_waiting_tokens, max_waiting_batch, max_waiting_batch_tokens
        )
        self._prefix = PrefixCache(prefix_block_tokens, prefix_cache_bytes)
        self._metrics = engine_metrics(registry)
        self._decode_weights = decode_weights
        self._attention = (decode_attention, prefill_attention)
        self._kernel_dir = Path(cache_dir)
        self._forward: LlamaBatchForward | None = None
        self._running_batch: RunningBatch | None = None
        self._avg_e2e, self._max_batch_seen = 1.0, 0

    # -- lifecycle -------------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        with self._cond:
            return self._scheduler.num_waiting

    @property
    def num_running(self) -> int:
        return len(self._running_batch) if self._running_batch is not None else 0

    @property
    def max_batch_running(self) -> int:
        """The most batch-priority sequences that may run at once."""
        return self._max_batch_running

    @property
    def max_batch_seen(self) -> int:
        return self._max_batch_seen  # the most sequences in a step since start (tests)

    @property
    def prefix_cache(self) -> PrefixCache:
        return self._prefix

    def _adopt(self, loaded: LoadedModel) -> None:
        LlamaBatchForward.cache_geometry(loaded.model)  # refuses an unsupported model first
        super()._adopt(loaded)
        limit = min(self._context_limit, self._max_seq_len)
        kernels = load_attention(*self._attention, self._kernel_dir, loaded.device)
        slots, weights = self._max_running, self._decode_weights
        forward = LlamaBatchForward.with_cache(loaded, slots, limit, weights, *kernels)
        self._forward, budget = forward, self._kv_budget
        self._running_batch = RunningBatch(forward.cache, self._prefix, budget, self._policy)
        self._context_limit = min(limit, self._kv_budget)

    async def stop(self) -> None:
        """Cancel every request and join the worker thread."""
        with self._cond:
            self._stopping = True
            waiting = self._scheduler.drain()
            self._cond.notify_all()
        for seq in waiting:
            self._release(seq.slot)
            seq.slot.finish(FinishReason.CANCELLED)
        await self._join_worker()
        self._prefix.clear()

    def check_capacity(self, priority: Priority = Priority.ONLINE) -> None:
        """Raise ``EngineOverloadedError`` when a request of ``priority`` would be refused now."""
        with self._cond:
            self._scheduler.check_room(retry_after=self._retry_after(priority), priority=priority)

    def _submit(self, request: GenerationRequest) -> RequestSlot:
        loaded = self.loaded
        check_request(request, self._context_limit)
        params, prompt = request.sampling, request.prompt_token_ids
        slot = RequestSlot(request=request, loop=asyncio.get_running_loop())
        seq = Seq(
            slot=slot,
            stream=OutputStream(loaded.tokenizer, prompt, params.stop),
            generator=None if params.greedy else make_generator(params, loaded.device),
            kv_tokens=len(prompt) + params.max_tokens,
            biased=biased_tokens(params, prompt, self._special_ids, loaded.device),
        )
        ticket = seq.ticket()
        labels = self._metrics_labels()
        with self._cond:
            if self._stopping or self._worker is None or not self._worker.is_alive():
                raise EngineUnavailableError("the engine is not running")
            if request.request_id in self._slots:
                raise InvalidRequestError(f"request id {request.request_id!r} is already active")
            try:
                self._scheduler.submit(ticket, retry_after=self._retry_after(request.priority))
            except EngineOverloadedError:
                self._metrics.requests_rejected.labels(*labels).inc()
                raise
            self._slots[request.request_id] = slot
            self._set_waiting_gauges()
            self._cond.notify()
        return slot

    def _retry_after(self, priority: Priority) -> float:
        """When the class's queue may have room: its queued rounds times the mean latency."""
        slots = self._max_batch_running if priority is Priority.BATCH else self._max_running
        batches = self._scheduler.waiting(priority) / slots + 1.0
        return round(min(max(self._avg_e2e * batches, 1.0), 60.0), 1)

    def _cancel(self, slot: RequestSlot) -> None:
        """Abort ``slot``: a waiting one ends now, a running one at the worker's next step."""
        slot.aborted.set()
        with self._cond:
            seq = self._scheduler.remove(slot.request.request_id)
            self._cond.notify()
        if seq is not None:
            self._release(slot)
            slot.finish(FinishReason.CANCELLED)

    def _metrics_labels(self) -> tuple[str]:
        return (self.model_name,)

    def _set_gauges(self) -> None:
        """The running and waiting gauges, from the worker thread."""
        running = self._running
        self._metrics.set_running(self.model_name, len(running), sum(s.batch for s in running))
        with self._cond:
            self._set_waiting_gauges()

    def _set_waiting_gauges(self) -> None:
        """The waiting gauges; hold ``_cond``."""
        queue = self._scheduler
        self._metrics.set_waiting(self.model_name, queue.num_waiting, queue.waiting(Priority.BATCH))

    # -- worker thread ---------------------------------------------------------

    @property
    def _running(self) -> RunningBatch:
        if self._running_batch is None:
            raise RuntimeError("the engine is not started")
        return self._running_batch

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._stopping or self._running or self._scheduler.num_waiting):
                        self._cond.wait()
                    if self._stopping:
                        return
                # Cancelled sequences leave before admission, so their slots count as free.
                for seq in self._running:
                    if seq.slot.should_cancel():
                        self._retire(seq, FinishReason.CANCELLED)
                with self._cond:
                    expired = self._scheduler.pop_expired(time.monotonic())
                    admitted = self._schedule()
                for seq in expired:
                    self._release(seq.slot)
                    seq.slot.finish(FinishReason.CANCELLED)
                for seq in admitted:
                    self._admit(seq)
                self._set_gauges()
                self._step()
                self._set_gauges()
        finally:
            for seq in self._running:
                self._retire(seq, FinishReason.CANCELLED)

    def _schedule(self) -> list[Seq]:
        """Take the requests to start now; preempt batch sequences an online one needs
        room from (``Scheduler.schedule``). Hold ``_cond``."""
        running_batch = [s.ticket() for s in self._running if s.batch]
        busy = self._scheduler.waiting(Priority.ONLINE) or len(running_batch) < len(self._running)
        cap = min(self._max_batch_running, self._batch_busy) if busy else self._max_batch_running
        free = (self._running.free_slots, self._running.free_kv_tokens)
        decided = self._scheduler.schedule(*free, cap - len(running_batch), running_batch)
        for seq in decided.preempted:
            self._preempt(seq)
        return decided.admitted

    def _preempt(self, seq: Seq) -> None:
        """Free ``seq``'s slot and KV room (the scheduler has requeued it); it resumes by
        recomputing its tokens (``Sequence.preempt``): its caller sees a pause."""
        self._running.remove(seq)
        seq.preempt()
        self._metrics.num_preemptions.labels(*self._metrics_labels()).inc()
        fields = {"generated": len(seq.generated), "preemptions": seq.preemptions}
        logger.debug("sequence_preempted", request_id=seq.slot.request.request_id, **fields)

    def _admit(self, seq: Seq) -> None:
        """Start ``seq`` in the running batch (from its cached prefix, if any)."""
        self._running.add(seq)
        labels = self._metrics_labels()
        if seq.preemptions == 0:
            self._metrics.prompt_tokens.labels(*labels).inc(len(seq.prompt))
        self._metrics.prefix_cache_queries.labels(*labels).inc(len(seq.context))
        self._metrics.prefix_cache_hits.labels(*labels).inc(seq.computed)

    def _step(self) -> None:
        """One iteration: one forward pass, sample, retire."""
        if self._forward is None:
            raise RuntimeError("the engine is not started")
        if not self._running:
            return
        labels = self._metrics_labels()
        step = self._running.next_step(self._chunk, self._batch_chunk, self._speculate)
        batch = step.batch
        in_step = len(batch.decode_slots) + len(batch.prefills)
        self._max_batch_seen = max(self._max_batch_seen, in_step)
        self._metrics.batch_size.labels(*labels).observe(in_step)
        try:
            governed = self._governor.step(len(batch.decode_slots), bool(batch.prefills))
            with governed, self._policy.timing(step.lone_rows()):
                logits = self._forward.forward(batch)
        except Exception as exc:  # the worker must survive a failing step
            logger.exception("engine_step_failed")
            error = f"{type(exc).__name__}: {exc}"
            for seq in self._running:
                self._retire(seq, FinishReason.ERROR, error)
            return
        for seq in step.prefilled:
            self._running.remember_prefix(seq)
        now = time.monotonic()
        for seq, guessed, rows in step.outputs(logits):
            for j, row in enumerate(rows):  # row j follows guess j - 1
                try:
                    reason = self._accept(seq, row, now, guessed[j] if j < len(guessed) else None)
                except Exception as exc:
                    logger.exception("sampling_failed", request_id=seq.slot.request.request_id)
                    self._retire(seq, FinishReason.ERROR, f"{type(exc).__name__}: {exc}")
                    break
                if reason is not None:
                    self._retire(seq, reason)
                if reason is not None or (j < len(guessed) and seq.generated[-1] != guessed[j]):
                    break
            if guessed:  # rows 0 .. j - 1 followed guesses the model chose
                self._metrics.count_speculation(self.model_name, len(guessed), j)
                self._policy.verified(seq.slot.request.sampling.greedy, j)

    def _accept(
        self, seq: Seq, logits: torch.Tensor, now: float, guess: int | None = None
    ) -> FinishReason | None:
        """Sample (verifying ``guess``, if any) and stream ``seq``'s next token;
        return why it ends, if it does.

        NOTE: an EOS token counts as a completion token (it cost a forward pass, and
        vLLM counts it too) but is never rendered as text."""
        slot = seq.slot
        params = slot.request.sampling
        token = sample_next(logits, params, seq.generator, seq.generated, guess, seq.biased)
        seq.generated.append(token)
        slot.completion_tokens += 1
        labels = self._metrics_labels()
        if len(seq.generated) == 1:
            self._metrics.time_to_first_token.labels(*labels).observe(now - seq.submitted)
        else:
            self._metrics.inter_token_latency.labels(*labels).observe(now - seq.last_token_at)
        seq.last_token_at = now
        self._metrics.generation_tokens.labels(*labels).inc()
        if token in self._eos_ids:
            slot.emit_text(seq.stream.finish())
            return FinishReason.STOP
        result = seq.stream.push(token)
        slot.emit_text(result.text)
        if result.stopped:
            return FinishReason.STOP
        if slot.completion_tokens >= params.max_tokens:
            slot.emit_text(seq.stream.finish())
            return FinishReason.LENGTH
        return None

    def _retire(self, seq: Seq, reason: FinishReason, error: str | None = None) -> None:
        """Free ``seq``'s slot and end its stream."""
        self._running.remove(seq)
        elapsed = time.monotonic() - seq.submitted
        self._avg_e2e = 0.8 * self._avg_e2e + 0.2 * elapsed
        self._metrics.e2e_request_latency.labels(*self._metrics_labels()).observe(elapsed)
        # Release the id before the caller hears of the end, so it may reuse it at once.
        self._release(seq.slot)
        seq.slot.finish(reason, error)
