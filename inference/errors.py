"""Errors raised by ``inference``; ``app.errors`` maps them to HTTP and WebSocket codes."""


class InferenceError(Exception):
    """Base of every inference error."""


class EngineUnavailableError(InferenceError):
    """The engine is not started, or its worker died."""


class EngineOverloadedError(InferenceError):
    """The waiting queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRequestError(InferenceError):
    """The request cannot be served (prompt too long, bad sampling parameters)."""


class ModelLoadError(InferenceError):
    """The model files are missing or unreadable."""
