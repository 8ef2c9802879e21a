"""The node's errors, every one answered in OpenAI's shape from this one place.

``{"error": {"message", "type", "param", "code"}}`` with the right status, so the
OpenAI SDKs (and ``RemoteEngine``) read them: 400 bad input, 401 bad key, 404
unknown model or route, 429 with ``Retry-After`` when the engine's queue is full,
503 when the engine cannot serve.
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from kernel.errors import InvalidInputError, OverloadedError, UnavailableError

logger = structlog.get_logger(__name__)

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class NodeError(Exception):
    """An error with its HTTP status and OpenAI ``type``, ``code`` and ``param``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        if self.status >= 500:
            return "server_error"
        return _TYPES.get(self.status, "invalid_request_error")

    def to_openai(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


def model_not_found(model: str) -> NodeError:
    return NodeError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def classify(exc: BaseException) -> NodeError:
    """The ``NodeError`` a client should see for ``exc``."""
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, OverloadedError):
        return NodeError(429, str(exc), code="overloaded", retry_after=exc.retry_after)
    if isinstance(exc, InvalidInputError):
        return NodeError(400, str(exc), code="invalid_request")
    if isinstance(exc, UnavailableError):
        return NodeError(503, str(exc), code="unavailable")
    if isinstance(exc, HTTPException):
        return NodeError(exc.status_code, exc.detail)
    return NodeError(500, "Internal server error.", code="internal_error")


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Litestar exception handler: any error as OpenAI's error body."""
    error = classify(exc)
    if error.status >= 500 and not isinstance(exc, NodeError | UnavailableError):
        logger.exception("unhandled_error", path=request.url.path, exc_info=exc)
    headers = {}
    if error.retry_after is not None:
        # Rounded up: a client that waits Retry-After seconds must not be refused again.
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return Response({"error": error.to_openai()}, status_code=error.status, headers=headers)
