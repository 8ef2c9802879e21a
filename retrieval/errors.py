"""Errors raised by ``retrieval``; ``app.errors`` maps them to HTTP and WebSocket codes."""


class RetrievalError(Exception):
    """Base of every retrieval error."""


class DocumentNotFoundError(RetrievalError):
    """No such document for this tenant (another tenant's document included)."""


class UnsupportedDocumentError(RetrievalError):
    """The file type is not one we can extract text from."""


class InvalidDocumentError(RetrievalError):
    """The file could not be parsed, or holds no text."""


class VectorStoreUnavailableError(RetrievalError):
    """The vector store cannot be reached."""


class InvalidRequestError(RetrievalError):
    """An argument is out of bounds: an empty or overlong name, collection or query, a bad limit."""


class InvalidCursorError(InvalidRequestError):
    """A page cursor that this service did not issue, or that was tampered with."""


class IngestQueueFullError(RetrievalError):
    """The ingestion queue holds as many documents as it may; retry later."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IngestQueueUnavailableError(RetrievalError):
    """The ingestion queue (Redis) cannot be reached; nothing was queued."""
