"""Errors raised by ``conversation``; ``app.errors`` maps them to HTTP and WebSocket codes."""


class ConversationError(Exception):
    """Base of every conversation-domain error."""


class NotFoundError(ConversationError):
    """No such object for this tenant (another tenant's object included)."""


class ConflictError(ConversationError):
    """The change clashes with what is stored (a duplicate name, say)."""


class InvalidCursorError(ConversationError):
    """A pagination cursor that this service did not issue."""


class AuthenticationError(ConversationError):
    """A missing, unknown or revoked credential."""


class InvalidInputError(ConversationError, ValueError):
    """A value the service refuses (a rating other than 1 or -1, say).

    Also a ``ValueError``, so code that validates arguments generically catches it.
    """


class DatabaseUnavailableError(ConversationError):
    """The SQL database did not answer a health check."""
