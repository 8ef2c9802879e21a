"""The error answers of every operation, written into the OpenAPI schema in one place.

Litestar documents a ``400`` of its own shape (``{"status_code", "detail"}``) for
every handler, but every error ragserve answers is ``{"error": {...}}`` (see
``app/errors.py``). ``document_errors`` replaces that answer and adds the others a
route can give, so generated clients and schema fuzzers see what the API does.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

__all__ = ["document_errors"]

ERROR_SCHEMA = "Error"
_UNAUTHENTICATED = {"/healthz", "/readyz"}
_ALWAYS = {
    "400": "The request is malformed or fails validation.",
    "401": "Missing, invalid, expired or revoked credentials.",
    "403": "The caller's role or scopes do not allow this.",
    "404": "No such object in the caller's tenant.",
    "413": "The request body is larger than the configured limit.",
    "422": "The request is well-formed but a value is out of bounds.",
    "429": "A rate limit, the turns-at-once limit or the generation queue is full; "
    "see Retry-After.",
    "503": "A dependency (database, vector store, generation engine) is unavailable.",
}
_WRITES = {
    "409": "The object conflicts with an existing one.",
    "415": "The uploaded media type is not supported.",
}
_RATE_LIMIT_HEADERS = {
    "Retry-After": "Seconds to wait before retrying (on 429 and some 503).",
    "RateLimit-Limit": "Burst of the request bucket closest to empty.",
    "RateLimit-Remaining": "Whole requests left in that bucket.",
    "RateLimit-Reset": "Seconds until that bucket is full again.",
    "RateLimit-Policy": "The bucket's burst and the seconds a full refill takes.",
}


def _error_schema() -> Schema:
    # NOTE: code and message are what ragserve's routes send; the OpenAI-compatible
    # routes send OpenAI's shape (message, type, param, code) in the same envelope,
    # hence the nullable code and the open object.
    nullable_string = Schema(type=[OpenAPIType.STRING, OpenAPIType.NULL])
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["error"],
        properties={
            "error": Schema(
                type=OpenAPIType.OBJECT,
                required=["message"],
                properties={
                    "code": nullable_string,
                    "message": Schema(type=OpenAPIType.STRING),
                    "type": nullable_string,
                    "param": nullable_string,
                },
            )
        },
        description="Every error: a stable code and a message for people.",
    )


def _response(description: str, status: str) -> OpenAPIResponse:
    headers = None
    if status in ("429", "503"):
        headers = {
            name: OpenAPIHeader(description=text, schema=Schema(type=OpenAPIType.INTEGER))
            for name, text in _RATE_LIMIT_HEADERS.items()
            if status == "429" or name == "Retry-After"
        }
    return OpenAPIResponse(
        description=description,
        content={
            "application/json": OpenAPIMediaType(
                schema=Reference(ref=f"#/components/schemas/{ERROR_SCHEMA}")
            )
        },
        headers=headers,  # type: ignore[arg-type]
    )


def document_errors(openapi: OpenAPI) -> OpenAPI:
    """Document ragserve's error answers on every operation of ``openapi`` (in place)."""
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    openapi.components.schemas[ERROR_SCHEMA] = _error_schema()
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            statuses = {} if path in _UNAUTHENTICATED else dict(_ALWAYS)
            if method in ("put", "post", "patch"):
                statuses.update(_WRITES)
            responses = operation.responses if operation.responses is not None else {}
            for status, description in statuses.items():
                responses[status] = _response(description, status)
            operation.responses = responses
    return openapi
