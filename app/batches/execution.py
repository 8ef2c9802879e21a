"""One batch line through the same path as the online request it stands for.

A chat line is an OpenAI chat completion turn (retrieval, safety, citations, the
stored conversation, usage and cost) in the engine's batch class; an embeddings
line is the embeddings route's work. Both take from the caller's rate limits: a
line that finds a bucket empty waits for it (a batch is throttled, not failed).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import structlog

from app.auth.principal import Principal, RateLimitOverride
from app.batches.store import LineResult, new_id
from app.core.errors import BadRequestError, OverloadedError, RateLimitedError, classify
from app.entrypoints.openai.embeddings import EmbeddingRequest
from app.entrypoints.openai.protocol import ChatCompletion, ChatCompletionRequest
from inference import Priority

if TYPE_CHECKING:
    from app.batches.lines import InputLine
    from app.entrypoints.openai.serving import OpenAIServing
    from app.ratelimit import RateLimiter

__all__ = ["LineExecutor", "principal_of", "stored_principal"]

log = structlog.get_logger(__name__)

MAX_THROTTLE_S = 30.0
"""Longest single wait for a rate-limit bucket before asking again."""


def stored_principal(principal: Principal) -> dict[str, Any]:
    """What a batch keeps of its creator, to run its lines as them."""
    limit = principal.rate_limit
    return {
        "subject": principal.subject,
        "role": principal.role,
        "scopes": list(principal.scopes),
        "key_id": principal.key_id,
        "rate_limit": None if limit is None else [limit.burst, limit.rate_per_s],
    }


def principal_of(tenant_id: str, stored: dict[str, Any]) -> Principal:
    """The batch creator's principal, as ``stored_principal`` kept it."""
    limit = stored.get("rate_limit")
    return Principal(
        tenant_id=tenant_id,
        subject=str(stored["subject"]),
        role=stored.get("role", "user"),
        scopes=tuple(stored.get("scopes") or ()),
        key_id=stored.get("key_id"),
        rate_limit=None if not limit else RateLimitOverride(int(limit[0]), float(limit[1])),
    )


class LineExecutor:
    """Runs lines as their online routes would, for a given caller."""

    def __init__(self, openai: OpenAIServing, limiter: RateLimiter | None) -> None:
        self._openai = openai
        self._limiter = limiter

    async def run(
        self, principal: Principal, line: InputLine, stop: asyncio.Event | None = None
    ) -> tuple[LineResult, int, int] | None:
        """The line's result, and the prompt and completion tokens it used; ``None``
        when ``stop`` was set while it waited for a rate limit (it did not run).

        Never raises for the line's own failure (a bad body, an unknown model, a
        refused turn): that is a result with its status code, as the online route
        would have answered. Cancellation propagates.
        """
        request_id = new_id("batch_req_")
        stop = stop or asyncio.Event()
        while True:
            try:
                if not await self._admit(principal, stop):
                    return None
                if line.url == "/v1/embeddings":
                    body, usage = await self._embed(line.body)
                else:
                    body, usage = await self._chat(principal, line.body)
                return LineResult(line.line, line.custom_id, request_id, 200, body), *usage
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = classify(exc)
                if isinstance(error, OverloadedError):
                    # The engine's batch queue is full: wait, as for a rate limit.
                    if not await _pause(error.retry_after, stop):
                        return None
                    continue
                if error.status_code >= 500:
                    log.warning("batch_line_failed", custom_id=line.custom_id, error=repr(exc))
                payload = {"error": error.to_openai_payload()}
                result = LineResult(
                    line.line, line.custom_id, request_id, error.status_code, payload
                )
                return result, 0, 0

    async def _admit(self, principal: Principal, stop: asyncio.Event) -> bool:
        """Wait until the caller's rate limits admit the line; ``False`` if stopped first."""
        if self._limiter is None or not self._limiter.enabled:
            return True
        while not stop.is_set():
            try:
                await self._limiter.admit(principal)
                return True
            except RateLimitedError as exc:
                await _pause(exc.retry_after, stop)
        return False

    async def _chat(
        self, principal: Principal, body: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[int, int]]:
        request = ChatCompletionRequest.model_validate(body)
        if request.stream:
            raise BadRequestError("stream is not supported in a batch.", param="stream")
        completion = await self._openai.chat(request, principal, priority=Priority.BATCH)
        if not isinstance(completion, ChatCompletion):  # stream=False was checked above
            raise BadRequestError("stream is not supported in a batch.", param="stream")
        data = completion.model_dump(mode="json")
        usage = data.get("usage") or {}
        return data, (int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))

    async def _embed(self, body: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, int]]:
        request = EmbeddingRequest.model_validate(body)
        response = await self._openai.embeddings(request)
        data = response.model_dump(mode="json")
        return data, (int(data.get("usage", {}).get("prompt_tokens", 0)), 0)


async def _pause(retry_after: float | None, stop: asyncio.Event) -> bool:
    """Wait ``retry_after`` seconds (bounded); ``False`` when ``stop`` was set first."""
    wait = min(max(retry_after or 1.0, 0.05), MAX_THROTTLE_S)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            await stop.wait()
    return not stop.is_set()
