"""Conversation domain: tenants, API keys, conversations, messages and feedback.

Services take an ``async_sessionmaker`` (see ``conversation.db``) and return the
frozen values of ``conversation.types``; ORM rows stay inside the package.
"""

from conversation.api_keys import ApiKeyService
from conversation.conversations import ConversationService
from conversation.db import async_url, check_health, create_engine, session_factory
from conversation.errors import (
    AuthenticationError,
    ConflictError,
    ConversationError,
    DatabaseUnavailableError,
    InvalidCursorError,
    InvalidInputError,
    NotFoundError,
)
from conversation.feedback import FeedbackService
from conversation.models import new_id
from conversation.tenants import TenantService
from conversation.types import (
    ApiKeyInfo,
    ConversationInfo,
    ConversationPage,
    CreatedApiKey,
    FeedbackInfo,
    MessageInfo,
    MessageStatus,
    Role,
    TenantInfo,
)

__all__ = [
    "ApiKeyInfo",
    "ApiKeyService",
    "AuthenticationError",
    "ConflictError",
    "ConversationError",
    "ConversationInfo",
    "ConversationPage",
    "ConversationService",
    "CreatedApiKey",
    "DatabaseUnavailableError",
    "FeedbackInfo",
    "FeedbackService",
    "InvalidCursorError",
    "InvalidInputError",
    "MessageInfo",
    "MessageStatus",
    "NotFoundError",
    "Role",
    "TenantInfo",
    "TenantService",
    "async_url",
    "check_health",
    "create_engine",
    "new_id",
    "session_factory",
]
