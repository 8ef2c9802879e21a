"""An engine that is one OpenAI-compatible server: vLLM, TGI, llama.cpp or a ragserve node.

Errors follow the contract the router relies on: until the first token is out,
``generate`` raises (``EngineOverloadedError`` for a full server,
``InvalidRequestError`` for a request the server refuses, ``EngineUnavailableError``
for anything else), so the router may retry elsewhere; after it, ``generate``
never raises for upstream trouble but ends with ``FinishReason.ERROR``.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import structlog

from inference.engine import Engine
from inference.errors import EngineUnavailableError, InferenceError, InvalidRequestError
from inference.remote_wire import (
    DONE,
    api_root,
    chat_body,
    finish_reason,
    parse_chunk,
    sse_data,
    status_error,
)
from inference.sampling import validate_sampling
from inference.types import FinishEvent, FinishReason, TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence
    from typing import Any

    from inference.types import ChatMessage, GenerationEvent, GenerationRequest

logger = structlog.get_logger(__name__)

_BYTES_PER_TOKEN = 3
"""For ``count_tokens``: BPE tokenizers average about 4 bytes of English a token;
counting 3 overestimates, so a prompt budget stays within the remote's context."""
_TOKENS_PER_MESSAGE = 4
"""Chat-template tokens around each message (role markers, separators), estimated."""


@dataclass(frozen=True, slots=True)
class _End:
    """The upstream finished cleanly; ``usage`` is its ``(prompt, completion)`` count."""

    reason: str | None
    usage: tuple[int, int] | None


_Item = str | _End | InferenceError | FinishReason
"""What the pump hands to ``generate``: text, the end, a failure, or ``CANCELLED``."""


@dataclass(eq=False, slots=True)
class _Call:
    """One request in flight: a task reading the upstream stream into ``items``."""

    items: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        """Close the upstream response now (its server frees the slot) and end the stream."""
        _cancel_once(self.pump)
        self.items.put_nowait(FinishReason.CANCELLED)


class RemoteEngine(Engine):
    """Generate with a remote OpenAI-compatible server over streamed chat completions.

    Args:
        base_url: The server, with or without a trailing ``/v1``.
        model: The model to ask for; ``None`` asks ``GET /v1/models`` once and
            takes the first.
        api_key: Sent as ``Authorization: Bearer``.
        connect_timeout: Seconds to open a connection (or wait for a pooled one).
        read_timeout: Seconds the server may stay silent: before the first token
            (queueing and prefill included) and between two events.
        health_timeout: Seconds ``check_health`` waits for ``GET /v1/models``.
        max_connections: Connections open at once, one per streaming request.
        model_name: The name callers see; default ``model`` (or the discovered one).
        model_version: The version callers see.
        ragserve_node: The server is a ``ragserve inference`` node, so batch requests
            carry ``priority: "batch"`` and yield to its online traffic. ``None`` (the
            default) decides from ``GET /v1/models``: a node whose every model is
            ``owned_by: "ragserve"`` is one. Anything else gets no ``priority``: vLLM
            refuses that value of its own ``priority`` field.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 120.0,
        health_timeout: float = 2.0,
        max_connections: int = 256,
        model_name: str = "",
        model_version: str = "",
        ragserve_node: bool | None = None,
    ) -> None:
        self.base_url = api_root(base_url)
        self.model_name = model_name or model or ""
        self.model_version = model_version
        self._model = model
        self._ragserve_node = ragserve_node
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        self._health_timeout = health_timeout
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(max_connections, 32)
        )
        self._client: httpx.AsyncClient | None = None
        self._calls: dict[str, _Call] = {}

    async def start(self) -> None:
        """Open the connection pool; it connects on first use, so a down server is no error."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self._timeout,
                limits=self._limits,
            )

    async def stop(self) -> None:
        """Cancel every request and close the pool."""
        pumps = [call.pump for call in self._calls.values() if call.pump is not None]
        for call in list(self._calls.values()):
            call.cancel()
        if pumps:
            await asyncio.wait(pumps)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def check_health(self) -> None:
        """Raise ``EngineUnavailableError`` unless ``GET /v1/models`` answers (with our model)."""
        models = await self._models(self._health_timeout)
        if self._model is not None and self._model not in models:
            raise EngineUnavailableError(
                f"{self.base_url} does not serve {self._model!r} (it serves {models})"
            )

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Not possible: the remote server applies its own chat template.

        Raises:
            NotImplementedError: Always; send ``GenerationRequest.messages`` instead.
        """
        raise NotImplementedError(
            "a remote engine cannot render chats into token ids: its server applies its "
            "own chat template; send the chat as GenerationRequest.messages"
        )

    def count_tokens(self, text: str) -> int:
        """A conservative estimate (UTF-8 bytes / 3, rounded up), for prompt budgets only."""
        return math.ceil(len(text.encode()) / _BYTES_PER_TOKEN)

    async def abort(self, request_id: str) -> None:
        """Close the request's upstream response; its stream ends ``CANCELLED``."""
        call = self._calls.get(request_id)
        if call is not None:
            call.cancel()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream a chat completion of ``request.messages`` from the server.

        Raises (before any event only):
            EngineOverloadedError: The server answered 429 or 503.
            InvalidRequestError: Bad parameters, no messages, or the server refused
                the request (another 4xx).
            EngineUnavailableError: Not started, or the server cannot be reached,
                failed, or ended its stream before the first token.
        """
        if self._client is None:
            raise EngineUnavailableError("the remote engine is not started")
        if not request.messages:
            raise InvalidRequestError("a remote engine needs the chat as messages")
        validate_sampling(request.sampling)
        if request.request_id in self._calls:
            raise InvalidRequestError(f"request id {request.request_id!r} is already active")
        prompt = self._estimate_prompt(request.messages)
        if _time_left(request.deadline) <= 0:
            yield FinishEvent(FinishReason.CANCELLED, prompt, 0)
            return
        body = chat_body(request, await self._model_id(), ragserve_node=bool(self._ragserve_node))
        call = _Call()
        self._calls[request.request_id] = call
        call.pump = asyncio.create_task(self._pump(self._client, body, request.request_id, call))
        sent = 0
        try:
            while True:
                item = await _next(call, request.deadline)
                # NOTE: FinishReason is a str too, so it is tested first.
                if isinstance(item, FinishReason):
                    yield FinishEvent(item, prompt, sent)
                    return
                if isinstance(item, str):
                    yield TokenEvent(sent, item)
                    sent += 1
                elif isinstance(item, _End):
                    prompt, completion = item.usage or (prompt, sent)
                    yield FinishEvent(finish_reason(item.reason), prompt, completion)
                    return
                elif sent == 0:
                    raise item
                else:
                    yield FinishEvent(FinishReason.ERROR, prompt, sent, error=str(item))
                    return
        finally:
            if self._calls.get(request.request_id) is call:
                del self._calls[request.request_id]
            _cancel_once(call.pump)
            await asyncio.wait([call.pump])

    async def _pump(
        self, client: httpx.AsyncClient, body: dict[str, Any], request_id: str, call: _Call
    ) -> None:
        """Read the upstream stream into ``call.items``; the last item ends it."""
        put = call.items.put_nowait
        ending: str | None = None
        usage: tuple[int, int] | None = None
        try:
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, headers={"X-Request-Id": request_id}
            ) as response:
                if response.status_code != httpx.codes.OK:
                    await response.aread()
                    retry_after = response.headers.get("Retry-After")
                    raise status_error(
                        response.status_code, response.content, retry_after, self.base_url
                    )
                async for data in sse_data(response.aiter_lines()):
                    if data == DONE:
                        break
                    chunk = parse_chunk(data)
                    if chunk.text:
                        put(chunk.text)
                    ending = chunk.finish_reason or ending
                    usage = chunk.usage or usage
                else:
                    if ending is None:
                        raise EngineUnavailableError(
                            f"{self.base_url} ended the stream without finishing the answer"
                        )
            put(_End(ending, usage))
        except InferenceError as exc:
            put(exc)
        except httpx.ConnectError as exc:
            put(EngineUnavailableError(f"cannot connect to {self.base_url}: {exc}"))
        except httpx.TimeoutException as exc:
            put(EngineUnavailableError(f"{self.base_url} timed out ({type(exc).__name__})"))
        except httpx.HTTPError as exc:
            if ending is not None:  # the answer was complete; only the usage is lost
                put(_End(ending, usage))
            else:
                put(EngineUnavailableError(f"the stream from {self.base_url} broke: {exc!r}"))
        except Exception as exc:  # a bug here must not leave the caller waiting for ever
            logger.exception("remote_stream_failed", url=self.base_url, request_id=request_id)
            put(EngineUnavailableError(f"reading {self.base_url} failed: {exc!r}"))

    async def _model_id(self) -> str:
        """The configured model, else the server's first (asked once)."""
        if self._model is None:
            models = await self._models(self._timeout.connect or 2.0)
            if not models:
                raise EngineUnavailableError(f"{self.base_url} lists no models")
            self._model = models[0]
            self.model_name = self.model_name or models[0]
        return self._model

    async def _models(self, wait_s: float) -> list[str]:
        """The ids of ``GET /v1/models``.

        Raises:
            EngineUnavailableError: Not started, unreachable, or not a model list.
        """
        if self._client is None:
            raise EngineUnavailableError("the remote engine is not started")
        try:
            response = await self._client.get("/v1/models", timeout=wait_s)
            response.raise_for_status()
            data = response.json()["data"]
            if self._ragserve_node is None and data:
                self._ragserve_node = all(card.get("owned_by") == "ragserve" for card in data)
            return [str(card["id"]) for card in data]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EngineUnavailableError(
                f"{self.base_url} did not list its models: {exc!r}"
            ) from exc

    def _estimate_prompt(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens when the server reports no usage: an overestimate."""
        return sum(self.count_tokens(m.content) + _TOKENS_PER_MESSAGE for m in messages)


def _cancel_once(pump: asyncio.Task[None] | None) -> None:
    """Cancel the pump unless it is done or already being cancelled.

    NOTE: a second cancel lands inside the first one's cleanup, ``client.stream``'s
    exit closing the response, and interrupts it: the connection then stays open and
    the server decodes on to ``max_tokens``. One cancel closes it, freeing the slot.
    """
    if pump is not None and not pump.done() and not pump.cancelling():
        pump.cancel()


def _time_left(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline - time.monotonic()


async def _next(call: _Call, deadline: float | None) -> _Item:
    """The next item of ``call``; ``CANCELLED`` once ``deadline`` has passed."""
    left = _time_left(deadline)
    if left == math.inf:
        return await call.items.get()
    try:
        async with asyncio.timeout(max(left, 0.0)):
            return await call.items.get()
    except TimeoutError:
        return FinishReason.CANCELLED
