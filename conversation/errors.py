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


class TaskLeasedError(ConflictError):
    """Another labeler holds a live lease on the task."""


class LeaseLostError(ConflictError):
    """The labeler no longer holds the task's lease (it expired and another took it,
    or the task was closed)."""


class TaskCompleteError(ConflictError):
    """The task has all the labels it wants, or was closed: it takes no more."""


class AlreadyLabelledError(ConflictError):
    """This labeler has labelled the task already (one label per labeler)."""


class InvalidLabelError(InvalidInputError):
    """A label the queue refuses: no or unknown categories, a bad rating, too long."""
