"""Errors raised by ``conversation``; the API layer maps them to HTTP and WebSocket codes.

Each derives from ``ConversationError`` and from the shared kind of ``kernel.errors``
it is (not found, invalid input, conflict), which is what the mapping reads.
"""

from __future__ import annotations

import kernel.errors


class ConversationError(kernel.errors.DomainError):
    """Base of every conversation-domain error."""


class NotFoundError(ConversationError, kernel.errors.NotFoundError):
    """No such object for this tenant (another tenant's object included)."""


class ConflictError(ConversationError, kernel.errors.ConflictError):
    """The change clashes with what is stored (a duplicate name, say)."""


class AuthenticationError(ConversationError):
    """A missing, unknown or revoked credential."""


class InvalidInputError(ConversationError, kernel.errors.InvalidInputError, ValueError):
    """A value the service refuses (a rating other than 1 or -1, say).

    Also a ``ValueError``, so code that validates arguments generically catches it.
    """


class TaskNotFoundError(NotFoundError, LookupError):
    """No such labeling task for this tenant.

    Also a ``LookupError``, as it was when the labeling queue lived in ``safety``.
    """
