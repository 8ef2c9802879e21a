"""Bounds on tenant ids, document names and collections, matching DocumentRow's columns."""

from __future__ import annotations

from retrieval.errors import InvalidRequestError

MAX_TENANT_ID_LENGTH = 36
MAX_NAME_LENGTH = 512
MAX_COLLECTION_LENGTH = 128


def check_tenant(tenant_id: str) -> None:
    if not tenant_id or len(tenant_id) > MAX_TENANT_ID_LENGTH:
        raise InvalidRequestError(f"tenant id must be 1 to {MAX_TENANT_ID_LENGTH} characters")


def check_label(field: str, value: str, max_length: int) -> str:
    """Validate a document name or collection; returns it stripped of outer spaces."""
    value = value.strip()
    if not value:
        raise InvalidRequestError(f"{field} must not be empty")
    if len(value) > max_length:
        raise InvalidRequestError(f"{field} is longer than {max_length} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidRequestError(f"{field} must not contain control characters")
    return value
