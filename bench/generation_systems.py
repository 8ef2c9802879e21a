"""The four systems the generation benchmark compares, behind one ``serve`` coroutine.

Each system is a server the benchmark's asyncio clients send requests to:
``serve(request, arrival)`` returns when the client has the whole answer.

- ``HFServer(max_batch=1)``, *naive*: a worker thread takes the oldest waiting
  request and runs one Hugging Face ``generate`` for it (a Flask-style wrapper that
  serialises requests).
- ``HFServer(max_batch=32)``, *static batching*: when the worker is free it takes
  every waiting request, up to 32, in arrival order, left-pads them (pad = EOS,
  with an attention mask) and runs one ``generate``; nobody joins a running batch
  and every member gets its answer when the whole batch ends.
- ``CBServer``: transformers' continuous batching, the manager that
  ``model.generate_batch`` wraps, fed request by request (``add_request`` with the
  request's own ``max_new_tokens``), per-token timestamps recorded by transformers.
- ``EngineServer``: ragserve's engine through the ``Engine`` API, streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from typing import Any, Protocol

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from bench.generation_stats import Record
from bench.generation_workload import BenchRequest
from inference import (
    Engine,
    FinishEvent,
    FinishReason,
    GenerationRequest,
    Priority,
    SamplingParams,
)


class System(Protocol):
    """A server under test."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def serve(self, request: BenchRequest, arrival: float) -> Record: ...


def greedy_config(eos_ids: list[int], max_new_tokens: int = 256) -> GenerationConfig:
    """Greedy decoding, no repetition penalty, EOS honoured, pad = EOS."""
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        repetition_penalty=1.0,
        eos_token_id=eos_ids,
        pad_token_id=eos_ids[0],
    )


class StepClock(LogitsProcessor):
    """Records ``time.perf_counter()`` at every decode step: call ``i`` is token ``i``."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.times.append(time.perf_counter())
        return scores


class RowBudget(StoppingCriteria):
    """Stops each row of a batch at its own ``max_tokens`` (``generate`` has one limit)."""

    def __init__(self, prompt_width: int, budgets: list[int]) -> None:
        self.width = prompt_width
        self.budgets = torch.tensor(budgets)

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        return (input_ids.shape[1] - self.width) >= self.budgets


def output_length(tokens: list[int], eos_ids: set[int], budget: int) -> int:
    """Tokens a row really produced: up to and including its first EOS, at most ``budget``."""
    for i, token in enumerate(tokens[:budget]):
        if token in eos_ids:
            return i + 1
    return min(len(tokens), budget)


_Item = tuple[BenchRequest, float, asyncio.Future[Record], asyncio.AbstractEventLoop]


class HFServer:
    """Hugging Face ``generate`` on a worker thread, over batches of up to ``max_batch``."""

    def __init__(self, name: str, model: Any, eos_ids: list[int], max_batch: int) -> None:
        self.name = name
        self._model = model
        self._eos = eos_ids
        self._max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=f"bench-{self.name}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def serve(self, request: BenchRequest, arrival: float) -> Record:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Record] = loop.create_future()
        self._queue.put((request, arrival, future, loop))
        return await future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            try:
                records = self.run_batch([(r, a) for r, a, _, _ in batch])
                for (_, _, future, loop), record in zip(batch, records, strict=True):
                    loop.call_soon_threadsafe(future.set_result, record)
            except Exception as exc:
                for _, _, future, loop in batch:
                    loop.call_soon_threadsafe(future.set_exception, exc)
            if stopping:
                return

    def run_batch(self, batch: list[tuple[BenchRequest, float]]) -> list[Record]:
        """One ``generate`` over ``batch`` (left-padded); a record per member."""
        width = max(len(r.prompt_ids) for r, _ in batch)
        pad = self._eos[0]
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r, _ in batch])
        mask = torch.tensor(
            [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r, _ in batch]
        )
        budgets = [r.max_tokens for r, _ in batch]
        clock = StepClock()
        stopping = StoppingCriteriaList([RowBudget(width, budgets)]) if len(batch) > 1 else None
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=greedy_config(self._eos, max(budgets)),
                logits_processor=LogitsProcessorList([clock]),
                stopping_criteria=stopping,
            )
        done = time.perf_counter()
        eos = set(self._eos)
        records = []
        for row, (request, arrival) in enumerate(batch):
            n = output_length(out[row, width:].tolist(), eos, request.max_tokens)
            records.append(
                Record(request.rid, arrival, clock.times[:n], done, n, len(request.prompt_ids))
            )
        return records


class CBServer:
    """transformers' continuous batching manager, one ``add_request`` per request."""

    name = "hf-continuous"

    def __init__(self, model: Any, eos_ids: list[int], config: Any) -> None:
        self._model = model
        self._eos = eos_ids
        self._config = config
        self._context: Any = None
        self._manager: Any = None

    async def start(self) -> None:
        self._context = self._model.continuous_batching_context_manager(
            generation_config=greedy_config(self._eos),
            continuous_batching_config=self._config,
            warmup=False,
            block=True,
            timeout=30,
        )
        self._manager = await asyncio.to_thread(self._context.__enter__)

    async def stop(self) -> None:
        if self._context is not None:
            await asyncio.to_thread(self._context.__exit__, None, None, None)
            self._context = self._manager = None

    async def serve(self, request: BenchRequest, arrival: float) -> Record:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, float]] = loop.create_future()

        def on_result(output: Any) -> None:
            if output.is_finished() and not future.done():
                future.set_result((output, time.perf_counter()))

        self._manager.register_result_handler(request.rid, on_result)
        self._manager.add_request(
            request.prompt_ids,
            request_id=request.rid,
            max_new_tokens=request.max_tokens,
            record_timestamps=True,
        )
        output, done = await future
        if output.error is not None:
            raise RuntimeError(f"generate_batch failed {request.rid}: {output.error}")
        return Record(
            request.rid,
            arrival,
            list(output.timestamps or []),
            done,
            len(output.generated_tokens),
            len(request.prompt_ids),
        )


class EngineServer:
    """ragserve's engine: one streaming ``Engine.generate`` per request.

    Several servers may share one engine (one per priority class or tenant); only
    one of them should ``start`` and ``stop`` it.
    """

    def __init__(
        self,
        name: str,
        engine: Engine,
        priority: Priority = Priority.ONLINE,
        tenant: str = "",
    ) -> None:
        self.name = name
        self.engine = engine
        self.priority = priority
        self.tenant = tenant

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    async def serve(self, request: BenchRequest, arrival: float) -> Record:
        record = Record(request.rid, arrival, prompt_tokens=len(request.prompt_ids))
        sampling = SamplingParams(
            max_tokens=request.max_tokens, temperature=0.0, repetition_penalty=1.0
        )
        stream = self.engine.generate(
            GenerationRequest(
                request.rid,
                request.prompt_ids,
                sampling,
                tenant_id=self.tenant,
                priority=self.priority,
            )
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                now = time.perf_counter()
                if isinstance(event, FinishEvent):
                    if event.reason is FinishReason.ERROR:
                        raise RuntimeError(f"engine failed {request.rid}: {event.error}")
                    record.done = now
                    record.completion_tokens = event.completion_tokens
                else:
                    record.token_times.append(now)
        return record
