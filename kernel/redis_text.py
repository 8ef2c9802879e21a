"""A Redis reply as text, whether or not the client was made with ``decode_responses``."""

from __future__ import annotations


def text(value: object) -> str:
    """``value`` as ``str``: bytes are decoded as UTF-8, anything else formatted."""
    return value.decode() if isinstance(value, bytes) else str(value)
