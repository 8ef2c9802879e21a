"""Redaction of log events: a structlog processor over the PII detectors."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from safety.pii import redact


def redact_value(value: Any) -> Any:
    """``value`` with PII removed from every string inside it (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def redact_event(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: put it before the renderer in ``structlog.configure``."""
    for key, value in list(event_dict.items()):
        event_dict[key] = redact_value(value)
    return event_dict
