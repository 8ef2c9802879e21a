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

    code = "unsupported_type"


class InvalidDocumentError(RetrievalError, kernel.errors.InvalidInputError):
    """The file could not be parsed, holds no text, or passes a cap of extraction.

    Its message is safe to show a client (it names the file and the limit, never a
    library's exception text); ``code`` says which problem it is (see ``FAILURES``).
    """

    def __init__(self, message: str, code: str = "invalid_document") -> None:
        super().__init__(message)
        self.code = code


class DocumentTooLargeError(InvalidDocumentError):
    """One upload is larger than a document may be (HTTP 413)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "document_too_large")


class QuotaExceededError(RetrievalError, kernel.errors.ConflictError):
    """Storing the upload would take the tenant past its ingestion quota.

    A conflict with the tenant's state (HTTP 409), not a rate: waiting does not
    help, deleting documents or a larger quota does.
    """

    code = "quota_exceeded"


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


FAILURES: dict[str, str] = {
    "invalid_document": "The document could not be read.",
    "unsupported_type": "The document's type is not one that can be read.",
    "too_many_pages": "The document has more pages than a document may have.",
    "too_much_text": "The document holds more text than a document may hold.",
    "document_too_large": "The document is larger than a document may be.",
    "extraction_timeout": "Reading the document took longer than allowed.",
    "extraction_out_of_memory": "Reading the document needed more memory than allowed.",
    "extraction_crashed": "The document's reader stopped unexpectedly.",
    "too_many_attempts": "Indexing was attempted too many times; each attempt stopped.",
    "indexing_failed": "Indexing failed repeatedly; upload the document again to retry.",
    "index_retrying": "An indexing attempt failed; it will be retried.",
}
"""A failed document's ``error_code`` and a sentence about it safe for any client.

Where an ``InvalidDocumentError`` has its own (safe) message, that is stored instead.
"""
