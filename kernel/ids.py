"""Row ids: uuid4 strings, so rows can be named before they are inserted."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """Returns a fresh id (a lowercase uuid4 string)."""
    return str(uuid.uuid4())


def is_canonical_id(value: object) -> bool:
    """Whether ``value`` is an id as :func:`new_id` writes it (a lowercase uuid string).

    Args:
        value: Anything a client sent.

    Returns:
        True for a uuid string in its canonical, lowercase, hyphenated form.
    """
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
