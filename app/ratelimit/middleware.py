"""The HTTP side of the rate limits: every authenticated request takes from its buckets.

Runs after authentication, so ``scope["user"]`` is the caller. Answers 429 (through
the one error mapping) when a bucket is empty, puts the ``RateLimit-*`` headers on
every limited response, successful or not, and holds a per-key turn slot for the
whole of a chat request, streamed answers included.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from litestar.middleware import AbstractMiddleware

from app.auth.principal import Principal
from app.core.errors import RateLimitedError

if TYPE_CHECKING:
    from litestar.types import Message, Receive, Scope, Send

    from app.ratelimit.limiter import RateLimiter

__all__ = ["UNLIMITED_PATHS", "RateLimitMiddleware"]

UNLIMITED_PATHS = ["^/healthz$", "^/readyz$", "^/metrics$", "^/schema"]
"""Probes, metrics and the OpenAPI schema are never limited."""

# NOTE: chat routes are recognised by path rather than by a handler ``opt`` so that
# every transport's controller stays unaware of rate limits; a new chat route must
# be added here (the WebSocket handler takes its turn slots itself).
_CHAT_ROUTES = re.compile(r"^/v1/(?:conversations/[^/]+/messages|chat/completions)$")


class RateLimitMiddleware(AbstractMiddleware):
    """Takes one request from the caller's buckets before the handler runs."""

    scopes = {ScopeType.HTTP}
    exclude = UNLIMITED_PATHS
    exclude_opt_key = "exclude_from_rate_limit"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("user")
        # NOTE: middlewares get no dependency injection; the limiter is read from the
        # app state the lifespan filled (absent while the app has no lifespan state).
        limiter: RateLimiter | None = scope["app"].state.get("rate_limiter")
        if limiter is None or not limiter.enabled or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        quota = await limiter.admit(principal)
        extra = [] if quota is None else _encode(quota.headers())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                headers: Any = message.get("headers") or []
                message["headers"] = [*headers, *extra]
            await send(message)

        async with AsyncExitStack() as stack:
            if scope.get("method") == "POST" and _CHAT_ROUTES.match(scope["path"]):
                try:
                    await stack.enter_async_context(limiter.turn_slot(principal))
                except RateLimitedError as exc:
                    if quota is not None:
                        exc.headers = {**quota.headers(), **exc.headers}
                    raise
            await self.app(scope, receive, send_with_headers)


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
