"""OpenAI's chat-completions wire format as a client speaks it: the request body,
the server-sent events of a streamed answer, and the upstream's errors.

Pure functions, no I/O: ``RemoteEngine`` does the HTTP and uses these to build what
it sends and to read what comes back, from vLLM, TGI, llama.cpp or a ragserve node.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from inference.errors import (
    EngineOverloadedError,
    EngineUnavailableError,
    InferenceError,
    InvalidRequestError,
)
from inference.types import FinishReason, Priority

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from inference.types import GenerationRequest

DONE = "[DONE]"
"""The data of the event that ends an OpenAI stream."""

_MISCONFIGURED = frozenset({401, 403, 404})
"""Statuses that say the endpoint is set up wrong (key, model, path), not the request."""


def api_root(base_url: str) -> str:
    """The server's root URL: ``http://host:8000/v1/`` and ``http://host:8000`` are alike.

    Raises:
        ValueError: Not an http(s) URL.
    """
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    return url.removesuffix("/v1")


def chat_body(
    request: GenerationRequest, model: str, *, ragserve_node: bool = False
) -> dict[str, Any]:
    """The streamed ``POST /v1/chat/completions`` body for ``request``.

    ``top_k`` and ``repetition_penalty`` go only when they change something: vLLM
    and llama.cpp take both under these names, and a server that does not know
    them never sees them in a request that does not need them.

    ``priority: "batch"`` goes only for a batch request to a ragserve node
    (``ragserve_node``): vLLM has a ``priority`` field of its own, an integer, and
    refuses the string. ``prompt_bias`` and ``no_repeat_ngram`` are ragserve's own
    too and go only there.
    """
    sampling = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.top_k > 0:
        body["top_k"] = sampling.top_k
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.repetition_penalty != 1.0:
        body["repetition_penalty"] = sampling.repetition_penalty
    if request.tenant_id:
        # A ragserve node shares its batch slots fairly by this; others log it.
        body["user"] = request.tenant_id
    if ragserve_node and request.priority is Priority.BATCH:
        body["priority"] = Priority.BATCH.value
    if ragserve_node and sampling.prompt_bias:
        body["prompt_bias"] = sampling.prompt_bias
    if ragserve_node and sampling.no_repeat_ngram:
        body["no_repeat_ngram"] = sampling.no_repeat_ngram
    return body


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one ``chat.completion.chunk`` carries for the first choice."""

    text: str = ""
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    """``(prompt_tokens, completion_tokens)``, on the last chunk when asked for."""


def parse_chunk(data: str) -> Chunk:
    """Read one event's data.

    Raises:
        EngineUnavailableError: Not a chunk, or an error event (the server failed
            after it had started answering).
    """
    try:
        payload = json.loads(data)
    except ValueError:
        raise EngineUnavailableError(
            f"the upstream sent a malformed event: {data[:200]!r}"
        ) from None
    if not isinstance(payload, dict):
        raise EngineUnavailableError(f"the upstream sent a malformed event: {data[:200]!r}")
    if "error" in payload:
        raise EngineUnavailableError(f"the upstream failed mid-stream: {error_message(payload)}")
    text, finish = "", None
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            text += delta["content"]
        finish = choice.get("finish_reason") or finish
    return Chunk(text, finish if isinstance(finish, str) else None, _usage(payload.get("usage")))


def _usage(usage: object) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def finish_reason(upstream: str | None) -> FinishReason:
    """Ours for the upstream's: ``length`` stays, everything else is a ``stop``."""
    return FinishReason.LENGTH if upstream == "length" else FinishReason.STOP


def status_error(status: int, body: bytes, retry_after: str | None, where: str) -> InferenceError:
    """The error that a non-200 answer of ``where`` to a chat completion means.

    429 and 503 are a full server (retry elsewhere or later); 401, 403 and 404 an
    endpoint set up wrong (a key or model name), which no request can fix, so the
    endpoint is unavailable; other 4xx are the request's fault and keep the
    upstream's message; 5xx are unavailable.
    """
    message = error_message(_json(body)) or body[:500].decode("utf-8", "replace")
    if status in (429, 503):
        return EngineOverloadedError(
            f"{where} is overloaded ({status}): {message}", parse_retry_after(retry_after)
        )
    if status in _MISCONFIGURED:
        return EngineUnavailableError(f"{where} refused the request ({status}): {message}")
    if 400 <= status < 500:
        return InvalidRequestError(message or f"{where} refused the request ({status})")
    return EngineUnavailableError(f"{where} failed ({status}): {message}")


def error_message(payload: object) -> str:
    """The message of an error body: OpenAI's ``{"error": {"message"}}``, TGI's
    ``{"error": "..."}``, or a bare ``message`` or ``detail``; "" if none."""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "detail"):
            if isinstance(error.get(key), str):
                return str(error[key])
    return ""


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def parse_retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); ``default`` if unusable."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default
