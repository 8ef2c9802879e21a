"""Errors raised by ``retrieval``; the API layer maps them to HTTP and WebSocket codes.

Each derives from ``RetrievalError`` and from the shared kind of ``kernel.errors``
it is, which is what the mapping reads. A bad page cursor raises
``kernel.errors.InvalidCursorError``, the one every listing shares.
"""

from __future__ import annotations

import kernel.errors


class RetrievalError(kernel.errors.DomainError):
    """Base of every retrieval error."""


class DocumentNotFoundError(RetrievalError, kernel.errors.NotFoundError):
    """No such document for this tenant (another tenant's document included)."""


class UnsupportedDocumentError(RetrievalError):
    """The file type is not one we can extract text from.

    NOTE: of no shared kind: it is a media-type problem (HTTP 415), not a 422.
    """


class InvalidDocumentError(RetrievalError, kernel.errors.InvalidInputError):
    """The file could not be parsed, or holds no text."""


class VectorStoreUnavailableError(RetrievalError, kernel.errors.UnavailableError):
    """The vector store cannot be reached."""


class InvalidRequestError(RetrievalError, kernel.errors.InvalidInputError):
    """An argument is out of bounds: an empty or overlong name, collection or query, a bad limit."""


class IngestQueueFullError(RetrievalError, kernel.errors.OverloadedError):
    """The ingestion queue holds as many documents as it may; retry later."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        """Args:
        message: What is full, for the client.
        retry_after: Seconds after which a retry may succeed.
        """
        super().__init__(message, retry_after)


class IngestQueueUnavailableError(RetrievalError, kernel.errors.UnavailableError):
    """The ingestion queue (Redis) cannot be reached; nothing was queued."""


class VectorStoreOverloadedError(RetrievalError, kernel.errors.OverloadedError):
    """Too many vector store searches are running or waiting; retry after ``retry_after``."""
