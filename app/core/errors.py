"""One error hierarchy, mapped to HTTP statuses and WebSocket codes in one place.

Every error a client sees is ``{"error": {"code", "message"}}``. Domain packages
raise their own exceptions; ``classify`` turns any of them into an ``ApiError``.

Internal exception text never reaches a client: an unavailable backing service
(vector store, queue, engine, database) is answered with its own code and a fixed
message, and its detail goes to the log; anything unexpected is a plain 500.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError, OperationalError

from app.core.metrics import ERRORS
from conversation.errors import (
    AlreadyLabelledError,
    AuthenticationError,
    LeaseLostError,
    TaskCompleteError,
    TaskLeasedError,
)
from inference.errors import EngineUnavailableError, ModelLoadError
from kernel import errors as domain
from retrieval.errors import (
    DocumentTooLargeError,
    IngestQueueUnavailableError,
    QuotaExceededError,
    UnsupportedDocumentError,
    VectorStoreUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """An error with its wire code, HTTP status and WebSocket error code."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, retry_after: float | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.param = param
        """The request field at fault (``messages[0].content``), when one is."""

    def to_payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def to_openai_payload(self) -> dict[str, Any]:
        """OpenAI's error shape, used on the OpenAI-compatible routes (``OPENAI_ROUTES``)."""
        return {
            "message": self.message,
            "type": _OPENAI_TYPES.get(self.status_code, "invalid_request_error")
            if self.status_code < HTTP_500_INTERNAL_SERVER_ERROR
            else "server_error",
            "param": self.param,
            "code": _OPENAI_CODES.get(self.code, self.code),
        }


OPENAI_ROUTES = (
    "/v1/chat/completions",
    "/v1/models",
    "/v1/embeddings",
    "/v1/files",
    "/v1/batches",
)
"""Path prefixes whose errors take OpenAI's shape, so the OpenAI SDKs parse them."""
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_OPENAI_CODES = {"unauthorized": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}


class BadRequestError(ApiError):
    status_code, code = 400, "bad_request"


class ContextLengthError(BadRequestError):
    """The prompt a caller sent does not fit its token budget (OpenAI's code)."""

    code = "context_length_exceeded"


class UnauthorizedError(ApiError):
    status_code, code = 401, "unauthorized"


class ForbiddenError(ApiError):
    status_code, code = 403, "forbidden"


class ResourceNotFoundError(ApiError):
    status_code, code = 404, "not_found"


class ModelNotFoundError(ResourceNotFoundError):
    """The request names a model this server does not serve (OpenAI's ``model_not_found``)."""

    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class ResourceConflictError(ApiError):
    status_code, code = 409, "conflict"


class PayloadTooLargeError(ApiError):
    status_code, code = 413, "payload_too_large"


class DocumentTooLargeApiError(PayloadTooLargeError):
    code = "document_too_large"


class QuotaExceededApiError(ResourceConflictError):
    """The upload would take the tenant past its ingestion quota (not a rate: 409)."""

    code = "quota_exceeded"


class TaskLeasedApiError(ResourceConflictError):
    """Another labeler holds the labeling task."""

    code = "task_leased"


class LeaseLostApiError(ResourceConflictError):
    """The labeler's lease on the task ran out and another took it (or it closed)."""

    code = "lease_lost"


class TaskCompleteApiError(ResourceConflictError):
    """The labeling task has all the labels it wants."""

    code = "task_complete"


class AlreadyLabelledApiError(ResourceConflictError):
    """The labeler labelled this task already."""

    code = "already_labelled"


class UnsupportedMediaError(ApiError):
    status_code, code = 415, "unsupported_media_type"


class UnprocessableError(ApiError):
    status_code, code = 422, "invalid_request"


class OverloadedError(ApiError):
    status_code, code = 429, "overloaded"


class RateLimitedError(ApiError):
    """A rate limit refused the request; ``headers`` say which limit and when to retry."""

    status_code, code = 429, "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers = dict(headers or {})


class BatchQuotaExceededError(RateLimitedError):
    """A tenant's unfinished batches would hold more requests or tokens than allowed."""

    code = "batch_quota_exceeded"


class TooManyTurnsError(RateLimitedError):
    """The caller already runs as many chat turns at once as it may."""

    code = "too_many_turns"


class UnavailableError(ApiError):
    status_code, code = 503, "unavailable"


class InternalError(ApiError):
    status_code, code = 500, "internal_error"


# NOTE: by the kernel's shared kinds (``kernel/errors.py``), which every domain error
# derives from; only the errors without a shared kind, or with a status or code of
# their own, are named here.
_DOMAIN_ERRORS: dict[type[Exception], type[ApiError]] = {
    # First: more specific than the shared kinds they derive from.
    DocumentTooLargeError: DocumentTooLargeApiError,
    QuotaExceededError: QuotaExceededApiError,
    TaskLeasedError: TaskLeasedApiError,
    LeaseLostError: LeaseLostApiError,
    TaskCompleteError: TaskCompleteApiError,
    AlreadyLabelledError: AlreadyLabelledApiError,
    domain.NotFoundError: ResourceNotFoundError,
    AuthenticationError: UnauthorizedError,
    domain.ConflictError: ResourceConflictError,
    domain.InvalidCursorError: BadRequestError,
    domain.InvalidInputError: UnprocessableError,
    UnsupportedDocumentError: UnsupportedMediaError,
    domain.OverloadedError: OverloadedError,
}


# NOTE: an unavailable part's own text names hosts, ports and library errors
# ("Qdrant is unreachable: [Errno 111] ... 10.0.3.7:6333"), so the client gets a
# code and a fixed sentence by the kind of part; the first matching row wins.
_UNAVAILABLE: tuple[tuple[type[Exception], str, str], ...] = (
    (
        VectorStoreUnavailableError,
        "vector_store_unavailable",
        "The search index cannot answer now; retry later.",
    ),
    (
        IngestQueueUnavailableError,
        "ingest_queue_unavailable",
        "The ingestion queue cannot take work now; retry later.",
    ),
    (
        EngineUnavailableError,
        "engine_unavailable",
        "No model endpoint can serve this now; retry later.",
    ),
    (ModelLoadError, "engine_unavailable", "The model is not loaded; retry later."),
    (
        domain.DatabaseUnavailableError,
        "database_unavailable",
        "The database cannot answer now; retry later.",
    ),
    (domain.UnavailableError, "unavailable", "A service this request needs is unavailable."),
)


_UNAVAILABLE_RETRY_AFTER_S = 5.0
"""Retry-After of a 503 whose cause names no time of its own (a Redis outage is not
retried for the breaker's cooldown, 5 s by default)."""


def _unavailable(exc: domain.UnavailableError) -> ApiError:
    """The safe 503 of an unavailable part, with a Retry-After; its detail is logged,
    never sent."""
    for kind, code, message in _UNAVAILABLE:
        if isinstance(exc, kind):
            log.warning("backend_unavailable", code=code, error=repr(exc))
            retry_after = getattr(exc, "retry_after", None) or _UNAVAILABLE_RETRY_AFTER_S
            error = UnavailableError(message, retry_after=retry_after)
            error.code = code
            return error
    raise AssertionError("domain.UnavailableError is the last row")  # pragma: no cover


def _is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost or refused database connection, not a bad query."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def classify(exc: BaseException) -> ApiError:
    """The ``ApiError`` a client should see for ``exc``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, domain.UnavailableError):
        return _unavailable(exc)
    if _is_database_outage(exc):
        # NOTE: a restarting database surfaces mid-request as the driver's own
        # error; the client gets the safe 503 rather than a 500.
        return _unavailable(domain.DatabaseUnavailableError(type(exc).__name__))
    for domain_type, api_type in _DOMAIN_ERRORS.items():
        if isinstance(exc, domain_type):
            return api_type(str(exc), retry_after=getattr(exc, "retry_after", None))
    if isinstance(exc, ValidationException):
        return BadRequestError(_validation_message(exc), param=_validation_param(exc))
    if isinstance(exc, NotFoundException):
        return ResourceNotFoundError(exc.detail or "Not found.")
    if isinstance(exc, PermissionDeniedException):
        return ForbiddenError(exc.detail or "Forbidden.")
    if isinstance(exc, HTTPException):
        error = ApiError(exc.detail)
        error.status_code = exc.status_code
        error.code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error
    return InternalError("Internal server error.")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_message(exc: ValidationException) -> str:
    """Litestar's validation detail plus the field problems, as one sentence."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    problems = [
        f"{item.get('key') or 'body'}: {item.get('message')}"
        for item in extra
        if isinstance(item, dict)
    ]
    detail = exc.detail or "Invalid request."
    return f"{detail} ({'; '.join(problems)})" if problems else detail


def _validation_param(exc: ValidationException) -> str | None:
    """The first offending field, as OpenAI names it (``messages[0].content``).

    Pydantic names the member of a union that failed (``content.str``,
    ``input.list[constrained-str]``); the field path stops before such a name.
    """
    for item in exc.extra if isinstance(exc.extra, list) else []:
        key = item.get("key") if isinstance(item, dict) else None
        if key:
            return field_param(str(key).split("."))
    return None


def field_param(location: Sequence[object]) -> str | None:
    """A pydantic error location as OpenAI's ``param`` (``messages[0].content``),
    stopping before the name of a union member (``input.str``)."""
    path = ""
    for part in map(str, location):
        if part.isdigit():
            path += f"[{part}]"
        elif _FIELD_NAME.fullmatch(part) and part not in _TYPE_NAMES:
            path += f".{part}" if path else part
        else:
            break
    return path or None


_FIELD_NAME = re.compile(r"[A-Za-z_]\w*")
_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Litestar exception handler: every error as ``{"error": {...}}``.

    The body is ragserve's ``{"code", "message"}`` except on ``OPENAI_ROUTES``,
    where it is OpenAI's ``{"message", "type", "param", "code"}``.
    """
    error = classify(exc)
    ERRORS.labels(error.code).inc()
    if error.status_code >= HTTP_500_INTERNAL_SERVER_ERROR and not isinstance(exc, ApiError):
        log.exception("unhandled_error", path=request.url.path, exc_info=exc)
    headers = dict(getattr(error, "headers", None) or {})
    if error.retry_after is not None:
        # Rounded up: a client that waits Retry-After seconds must not be refused again.
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    openai = request.url.path.startswith(OPENAI_ROUTES)
    body = error.to_openai_payload() if openai else error.to_payload()
    return Response({"error": body}, status_code=error.status_code, headers=headers)
