"""Errors raised by ``inference``; the API layer maps them to HTTP and WebSocket codes.

Each derives from ``InferenceError`` and from the shared kind of ``kernel.errors``
it is, which is what the mapping reads.
"""

from __future__ import annotations

import kernel.errors


class InferenceError(kernel.errors.DomainError):
    """Base of every inference error."""


class EngineUnavailableError(InferenceError, kernel.errors.UnavailableError):
    """The engine is not started, or its worker died."""


class EngineOverloadedError(InferenceError, kernel.errors.OverloadedError):
    """The waiting queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        """Args:
        message: What is full, for the client.
        retry_after: Seconds after which a retry may succeed.
        """
        super().__init__(message, retry_after)


class InvalidRequestError(InferenceError, kernel.errors.InvalidInputError):
    """The request cannot be served (prompt too long, bad sampling parameters)."""


class ModelLoadError(InferenceError, kernel.errors.UnavailableError):
    """The model files are missing or unreadable."""
