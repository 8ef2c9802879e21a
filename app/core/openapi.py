"""The OpenAPI schema made to say what the server enforces, in one place.

Litestar documents a ``400`` of its own shape (``{"status_code", "detail"}``) for
every handler, but every error ragserve answers is ``{"error": {...}}`` (see
``app/errors.py``). ``document_errors`` replaces that answer and adds the others a
route can give, so generated clients and schema fuzzers see what the API does.

Litestar's own translation of the pydantic models loses what they enforce (unknown
fields forbidden, a bound of ``0``, the bounds of a list's items, an optional body),
so ``describe_models`` replaces each model's schema with pydantic's own JSON Schema
(OpenAPI 3.1 speaks JSON Schema 2020-12) and marks optional bodies optional.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar import Litestar

    from app.core.settings import Settings

__all__ = ["describe_models", "document_errors", "state_limits"]

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
            elif method == "delete":
                # Deleting what something else still uses (a version in a rollout).
                statuses["409"] = _WRITES["409"]
            responses = operation.responses if operation.responses is not None else {}
            for status, description in statuses.items():
                responses[status] = _response(description, status)
            operation.responses = responses
    return openapi


def _models(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


def _wire_models(names: set[str]) -> dict[str, type[BaseModel]]:
    """The app's pydantic models named like schema components, where the name is unique."""
    found: dict[str, list[type[BaseModel]]] = {}
    for model in set(_models(BaseModel)):
        if model.__module__.startswith("app.") and model.__name__ in names:
            found.setdefault(model.__name__, []).append(model)
    return {name: models[0] for name, models in found.items() if len(models) == 1}


def describe_models(app: Litestar) -> OpenAPI:
    """Give ``app``'s schema (in place) the models' own JSON Schema and optional bodies.

    Every component named after one of the app's pydantic models becomes that
    model's ``model_json_schema`` (validation mode: what a request must be, and
    what an answer built by the model is); the models it refers to join the
    components. A request body whose ``data`` parameter has a default is optional.
    """
    openapi = app.openapi_schema
    components: dict[str, Any] = openapi.components.schemas or {}
    for name, model in _wire_models(set(components)).items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for ref_name, ref_schema in schema.pop("$defs", {}).items():
            components[ref_name] = ref_schema
        components[name] = schema
    openapi.components.schemas = components
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None or not data.has_default:
                continue
            item = (openapi.paths or {}).get(route.path_format)
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if operation is not None and operation.request_body is not None:
                    operation.request_body.required = False
    return openapi


def state_limits(openapi: OpenAPI, settings: Settings) -> OpenAPI:
    """State (in place) the bounds the settings set, which the models cannot know: a
    question's length on ``POST .../messages``, the answer's ``max_tokens`` there and
    on ``POST /v1/chat/completions``.

    A model version's own, lower ``max_tokens_limit`` (the registry's) stays a 422.
    """
    components: dict[str, Any] = openapi.components.schemas or {}
    chat = components.get("ChatRequest")
    if isinstance(chat, dict):
        chat["properties"]["content"]["maxLength"] = settings.server.max_message_chars
    for model, field in (
        ("ChatOptions", "max_tokens"),
        ("ChatCompletionRequest", "max_tokens"),
        ("ChatCompletionRequest", "max_completion_tokens"),
    ):
        schema = components.get(model)
        if not isinstance(schema, dict):
            continue
        for branch in schema["properties"][field].get("anyOf", []):
            if branch.get("type") == "integer":
                branch["maximum"] = settings.generation.max_tokens_limit
    return openapi
