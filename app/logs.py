"""Structured JSON logs (structlog), one configuration for the server and the CLI."""

from __future__ import annotations

import logging
import sys

import structlog

from safety import redact_event


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Route structlog and the standard library's logging to stderr."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # Last before rendering: no email, card, key or other PII reaches a log line.
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "sentence_transformers", "transformers", "qdrant_client"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
