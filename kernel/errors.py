"""The base of every domain error, and the kinds the domains share.

Each domain package raises errors of its own (``conversation.NotFoundError``,
``retrieval.DocumentNotFoundError``, ...) that derive from its package base and
from one kind here, so the API layer can map a kind to one HTTP status and
WebSocket code instead of listing every domain's classes.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a domain package raises on purpose."""


class NotFoundError(DomainError):
    """No such object for this caller (another tenant's object included)."""


class InvalidInputError(DomainError):
    """An argument the service refuses: out of bounds, malformed, or unknown."""


class ConflictError(DomainError):
    """The change clashes with what is stored (a duplicate name, say)."""


class UnavailableError(DomainError):
    """A backing service (database, vector store, queue, engine) cannot serve now."""


class OverloadedError(DomainError):
    """Too much work is waiting; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        """Args:
        message: What is full, for the client.
        retry_after: Seconds after which a retry may succeed.
        """
        super().__init__(message)
        self.retry_after = retry_after


class InvalidCursorError(DomainError):
    """A pagination cursor that this service did not issue, or that was tampered with.

    NOTE: a kind of its own rather than an ``InvalidInputError``: the API answers
    it with 400 (the request's query string is wrong), not 422.
    """


class DatabaseUnavailableError(UnavailableError):
    """The SQL database did not answer (a health check, or a connection refused after
    its retries)."""

    retry_after = 1.0
    """A restart is bridged by the connect retries; a client may try again soon."""
