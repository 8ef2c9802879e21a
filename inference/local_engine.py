"""An in-process engine: one worker thread serving requests one at a time, in FIFO order
(online requests before batch ones).

This is the first engine; the continuous-batching engine (docs/engine.md) implements
the same ``Engine`` interface and replaces it by configuration.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import structlog
import torch

from inference.detokenizer import OutputStream
from inference.engine_support import (
    check_request,
)
from inference.errors import (
    EngineOverloadedError,
    EngineUnavailableError,
    InvalidRequestError,
)
from inference.request_slot import RequestSlot
from inference.sampling import biased_tokens, make_generator, sample_next
from inference.threaded_engine import Loader, ThreadedEngine
from inference.types import (
    FinishReason,
    GenerationRequest,
    Priority,
)

logger = structlog.get_logger(__name__)


class LocalEngine(ThreadedEngine):
    """Generate with a local transformers model on a dedicated worker thread.

    The event loop never runs a forward pass: ``start`` loads the model in a
    thread, and one worker thread decodes the requests one after another.

    Args:
        loader: Returns the model to serve; when given, the load parameters below
            are ignored. Tests pass one that returns an already-loaded model.
        model_path: See ``load_model``; ``None`` is the packaged SmolLM2.
        cache_dir: See ``load_model``.
        dtype: See ``load_model``.
        device: See ``load_model``.
        max_waiting: How many requests of each priority class may wait behind the
            running one; more are refused with ``EngineOverloadedError``. Batch
            requests start only when no online one waits, and are never preempted.
        max_context_tokens: Upper bound on prompt plus ``max_tokens``; the model's
            ``max_position_embeddings`` applies too.
        threads: Intra-op threads for the worker; ``None`` keeps torch's default.
    """

    thread_name = "ragserve-local-engine"

    def __init__(
        self,
        loader: Loader | None = None,
        *,
        model_path: str | None = None,
        cache_dir: Path = Path("data/models"),
        dtype: str = "auto",
        device: str = "cpu",
        max_waiting: int = 64,
        max_context_tokens: int | None = None,
        threads: int | None = None,
    ) -> None:
        if max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        super().__init__(
            loader,
            model_path=model_path,
            cache_dir=cache_dir,
            dtype=dtype,
            device=device,
            threads=threads,
            max_context_tokens=max_context_tokens,
        )
        self._max_waiting = max_waiting
        self._waiting: deque[RequestSlot] = deque()
        self._running: RequestSlot | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        """Requests queued behind the running one."""
        with self._cond:
            return len(self._waiting)

    @property
    def num_running(self) -> int:
        """Requests being decoded now (0 or 1)."""
        with self._cond:
            return 0 if self._running is None else 1

    async def stop(self) -> None:
        """Cancel every request and join the worker thread."""
        with self._cond:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), deque()
            if self._running is not None:
                self._running.aborted.set()
            self._cond.notify_all()
        for slot in waiting:
            self._release(slot)
            slot.finish(FinishReason.CANCELLED)
        await self._join_worker()

    def _submit(self, request: GenerationRequest) -> RequestSlot:
        if self._loaded is None:
            raise EngineUnavailableError("the engine is not started")
        check_request(request, self._context_limit)
        slot = RequestSlot(request=request, loop=asyncio.get_running_loop())
        with self._cond:
            if self._stopping or self._worker is None or not self._worker.is_alive():
                raise EngineUnavailableError("the engine is not running")
            if request.request_id in self._slots:
                raise InvalidRequestError(f"request id {request.request_id!r} is already active")
            self._check_room(request.priority)
            self._waiting.append(slot)
            self._slots[request.request_id] = slot
            self._cond.notify()
        return slot

    def check_capacity(self, priority: Priority = Priority.ONLINE) -> None:
        """Raise ``EngineOverloadedError`` when a request of ``priority`` would be refused now."""
        with self._cond:
            self._check_room(priority)

    def _check_room(self, priority: Priority) -> None:
        """Raise ``EngineOverloadedError`` when ``priority``'s share of the queue is full;
        hold ``_cond``."""
        waiting = sum(1 for s in self._waiting if s.request.priority is priority)
        if waiting >= self._max_waiting:
            raise EngineOverloadedError(f"{waiting} requests are already waiting", retry_after=1.0)

    def _cancel(self, slot: RequestSlot) -> None:
        """Abort ``slot``: a waiting one ends now, a running one at the worker's next step."""
        slot.aborted.set()
        with self._cond:
            was_waiting = slot in self._waiting
            if was_waiting:
                self._waiting.remove(slot)
        if was_waiting:
            self._release(slot)
            slot.finish(FinishReason.CANCELLED)

    # -- worker thread ---------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                slot = next(
                    (s for s in self._waiting if s.request.priority is Priority.ONLINE),
                    self._waiting[0],
                )
                self._waiting.remove(slot)
                self._running = slot
            try:
                self._serve(slot)
            finally:
                with self._cond:
                    self._running = None
                self._release(slot)

    def _serve(self, slot: RequestSlot) -> None:
        error: str | None = None
        try:
            reason = self._decode(slot)
        except Exception as exc:  # the worker must survive a failing request
            logger.exception("generation_failed", request_id=slot.request.request_id)
            reason, error = FinishReason.ERROR, f"{type(exc).__name__}: {exc}"
        # Release the id before the caller hears of the end, so it may reuse it at once.
        self._release(slot)
        slot.finish(reason, error)

    def _decode(self, slot: RequestSlot) -> FinishReason:
        """Run one request to its end; return why it ended.

        NOTE: an EOS token counts as a completion token (it cost a forward pass,
        and vLLM counts it too) but is never rendered as text.
        """
        loaded = self.loaded
        request = slot.request
        params = request.sampling
        generator = None if params.greedy else make_generator(params, loaded.device)
        stream = OutputStream(loaded.tokenizer, request.prompt_token_ids, params.stop)
        if slot.should_cancel():
            return FinishReason.CANCELLED
        generated: list[int] = []
        biased = biased_tokens(params, request.prompt_token_ids, self._special_ids, loaded.device)
        with torch.inference_mode():
            input_ids = torch.tensor([request.prompt_token_ids], device=loaded.device)
            # Only the last position's logits matter; the full [prompt, vocab] matrix
            # would cost hundreds of MB for a long prompt.
            output = loaded.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
            while True:
                if slot.should_cancel():
                    return FinishReason.CANCELLED
                logits = output.logits[0, -1]
                token = sample_next(logits, params, generator, generated, biased=biased)
                generated.append(token)
                slot.completion_tokens += 1
                if token in self._eos_ids:
                    reason = FinishReason.STOP
                    break
                result = stream.push(token)
                slot.emit_text(result.text)
                if result.stopped:
                    return FinishReason.STOP
                if slot.completion_tokens >= params.max_tokens:
                    reason = FinishReason.LENGTH
                    break
                output = loaded.model(
                    input_ids=torch.tensor([[token]], device=loaded.device),
                    past_key_values=output.past_key_values,
                    use_cache=True,
                )
        slot.emit_text(stream.finish())
        return reason
