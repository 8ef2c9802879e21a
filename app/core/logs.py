"""Structured JSON logs (structlog), one configuration for the server and the CLI.

Every line, structlog's and the standard library's alike (uvicorn, SQLAlchemy, ...),
goes through the same processors: the request id bound by the app's middleware,
a level and a timestamp, then the secret filters, then one JSON renderer. So a
line written while a request or a WebSocket is served carries its ``request_id``,
and no line carries an API key, a JWT or an ``Authorization`` header.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import structlog

from safety import redact_event

if TYPE_CHECKING:
    from collections.abc import MutableMapping

# Fields whose value is a credential whatever it looks like.
_SECRET_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "x-api-key",
        "secret",
        "password",
        "jwt",
    }
)


def drop_secret_fields(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask credential fields, also inside dicts (headers).

    ``redact_event`` (after it) catches credentials by their shape inside any text;
    this one catches them by name, whatever their shape.
    """
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask(key, value)
    return event_dict


def _mask(key: Any, value: Any) -> Any:
    if isinstance(key, str | bytes) and _is_secret_name(key):
        return "[SECRET]"
    if isinstance(value, dict):
        return {k: _mask(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in value
    ):
        # Header lists: [(name, value), ...]
        return type(value)((k, _mask(k, v)) for k, v in value)
    return value


def _is_secret_name(name: str | bytes) -> bool:
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.lower() in _SECRET_FIELDS


class _CurrentStderr:
    """``sys.stderr`` as it is at each write, so whoever swaps it (a test) gets the lines."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Route structlog and the standard library's logging to stderr, one format for both."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Last before rendering: no credential, email, card or other PII reaches a line.
    filters: list[structlog.typing.Processor] = [drop_secret_fields, redact_event]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *filters, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *filters,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("httpx", "sentence_transformers", "transformers", "qdrant_client"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # NOTE: uvicorn installs its own handlers on these loggers; pointing them at the
    # root keeps every line in one JSON format with the request id.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
