"""What the in-process engines share: the model, one worker thread, the request table."""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jinja2 import TemplateError

from inference.engine import Engine
from inference.engine_support import context_limit, eos_token_ids, render_chat, stream_events
from inference.errors import EngineUnavailableError, InvalidRequestError
from inference.loader import LoadedModel, load_model
from inference.thread_governor import ThreadGovernor
from kernel.torch_threads import default_threads

if TYPE_CHECKING:
    from inference.request_slot import RequestSlot
    from inference.types import ChatMessage, GenerationEvent, GenerationRequest

Loader = Callable[[], LoadedModel]


class ThreadedEngine(Engine):
    """An engine whose forward passes run on one dedicated worker thread.

    Subclasses decide how requests are queued (``_submit``, ``_cancel``) and what
    the worker does (``_work``); this class loads the model off the event loop,
    owns the thread and the table of live requests, and streams their events.

    Args:
        loader: Returns the model to serve; when given, the load parameters are
            ignored. Tests pass one that returns an already-loaded model.
        model_path: See ``load_model``; ``None`` is the packaged SmolLM2.
        cache_dir: See ``load_model``.
        dtype: See ``load_model``.
        device: See ``load_model``.
        threads: Intra-op threads for the worker; ``None`` keeps torch's default,
            except that on a CPU an engine wrapping its steps in ``_governor``
            (``BatchingEngine``) lets ``ThreadGovernor`` choose between that and
            fewer by timing its decode steps, as the other work on the cores varies.
        max_context_tokens: Upper bound on prompt plus ``max_tokens``; the model's
            ``max_position_embeddings`` applies too.
    """

    thread_name = "ragserve-engine"

    def __init__(
        self,
        loader: Loader | None,
        *,
        model_path: str | None,
        cache_dir: Path,
        dtype: str,
        device: str,
        threads: int | None,
        max_context_tokens: int | None,
    ) -> None:
        self._loader: Loader = loader or partial(
            load_model, model_path, Path(cache_dir), dtype, device
        )
        self._threads = threads
        self._governor = ThreadGovernor(adaptive=False)
        self._max_context_tokens = max_context_tokens
        self.model_name = ""
        self.model_version = ""
        self._loaded: LoadedModel | None = None
        self._context_limit = 0
        self._eos_ids: frozenset[int] = frozenset()
        self._special_ids: frozenset[int] = frozenset()
        self._start_lock = asyncio.Lock()
        self._cond = threading.Condition()
        self._slots: dict[str, RequestSlot] = {}
        self._stopping = False
        self._worker: threading.Thread | None = None

    @property
    def loaded(self) -> LoadedModel:
        """The served model.

        Raises:
            EngineUnavailableError: ``start`` has not finished.
        """
        if self._loaded is None:
            raise EngineUnavailableError("the engine is not started")
        return self._loaded

    @property
    def context_limit(self) -> int:
        """The most tokens (prompt plus ``max_tokens``) one request may take."""
        return self._context_limit

    async def start(self) -> None:
        """Load the model (off the event loop) and start the worker; idempotent.

        Raises:
            ModelLoadError: The model cannot be loaded or served by this engine.
        """
        async with self._start_lock:
            if self._worker is not None and self._worker.is_alive():
                return
            if self._loaded is None:
                await _in_own_thread(self._load_and_adopt)
            with self._cond:
                self._stopping = False
            self._worker = threading.Thread(
                target=self._worker_main, name=self.thread_name, daemon=True
            )
            self._worker.start()

    def _load_and_adopt(self) -> None:
        torch.set_num_threads(self._threads or default_threads())
        self._adopt(self._loader())

    def _adopt(self, loaded: LoadedModel) -> None:
        """Take ``loaded`` as the served model; subclasses size their state from it."""
        self._context_limit = context_limit(loaded, self._max_context_tokens)
        self._eos_ids = eos_token_ids(loaded)
        self._special_ids = self._eos_ids.union(loaded.tokenizer.all_special_ids)
        self._loaded = loaded
        adaptive = self._threads is None and loaded.device.type == "cpu"
        self._governor = ThreadGovernor(adaptive=adaptive)
        self.model_name = loaded.name
        self.model_version = loaded.version

    async def _join_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.join)

    async def check_health(self) -> None:
        """Raise ``EngineUnavailableError`` unless started and the worker is alive."""
        if self._loaded is None or self._worker is None:
            raise EngineUnavailableError("the engine is not started")
        if not self._worker.is_alive():
            raise EngineUnavailableError("the engine worker has died")

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of ``messages`` in the chat template, ending where the reply starts."""
        return render_chat(self.loaded.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes, without special tokens."""
        return len(self.loaded.tokenizer.encode(text, add_special_tokens=False))

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream the events of ``request``.

        The request is queued when iteration starts, so errors surface on the
        first ``__anext__``, before any event. Closing the iterator early (break
        plus ``aclose``, or cancelling the consuming task) aborts the request.

        A request without ``prompt_token_ids`` is rendered from its ``messages``
        with the model's chat template; its ``FinishEvent.prompt_tokens`` counts
        the rendered prompt.

        Raises:
            EngineUnavailableError: Not started, or stopping.
            EngineOverloadedError: The waiting queue is full.
            InvalidRequestError: Bad parameters, no prompt, or too long for the context.
        """
        slot = self._submit(self._with_prompt(request))
        async for event in stream_events(slot, self._cancel):
            yield event

    def _with_prompt(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with its prompt token ids, rendered from its messages if need be."""
        if request.prompt_token_ids:
            return request
        if not request.messages:
            raise InvalidRequestError("the request has neither prompt token ids nor messages")
        try:
            prompt = self.render_chat(request.messages)
        except TemplateError as exc:
            # NOTE: some chat templates refuse a message order (say, two user turns
            # in a row); that is the request's fault, not the engine's.
            raise InvalidRequestError(f"the chat template refused the messages: {exc}") from exc
        return replace(request, prompt_token_ids=prompt)

    async def abort(self, request_id: str) -> None:
        """Cancel a waiting or running request; unknown ids are ignored."""
        with self._cond:
            slot = self._slots.get(request_id)
        if slot is not None:
            self._cancel(slot)

    def _release(self, slot: RequestSlot) -> None:
        with self._cond:
            if self._slots.get(slot.request.request_id) is slot:
                del self._slots[slot.request.request_id]

    def _worker_main(self) -> None:
        # NOTE: set, not inherited: threads beside the engine pin themselves to one
        # torch thread (``kernel.torch_threads``), and a new thread would take the last
        # count set anywhere.
        torch.set_num_threads(self._threads or default_threads())
        self._work()

    @abstractmethod
    def _submit(self, request: GenerationRequest) -> RequestSlot:
        """Queue ``request`` (under ``_cond``) and return its slot; raise to refuse it."""

    @abstractmethod
    def _cancel(self, slot: RequestSlot) -> None:
        """Abort ``slot``: a waiting one ends now, a running one at the next step."""

    @abstractmethod
    def _work(self) -> None:
        """The worker thread's loop; returns when ``_stopping`` is set."""


async def _in_own_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` on a new thread that ends with it, and wait for it.

    NOTE: not the event loop's executor: a thread that has run torch on several
    threads keeps an OpenMP pool while it lives, which slows the engine's own
    (``kernel.torch_threads``); this one's pool goes when it ends.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(settle, exc)
        else:
            loop.call_soon_threadsafe(settle, None)

    thread = threading.Thread(target=run, name="ragserve-model-load", daemon=True)
    thread.start()
    try:
        await done
    finally:
        await asyncio.to_thread(thread.join)
