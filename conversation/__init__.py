"""Conversation domain: tenants, users, API keys, conversations, messages and feedback.

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
from conversation.hot_state import CachedConversation, HotState, MemoryHotState, NoHotState
from conversation.hot_state_redis import RedisHotState
from conversation.models import new_id
from conversation.tenants import TenantService
from conversation.types import (
    PRINCIPAL_ROLES,
    ApiKeyInfo,
    ConversationInfo,
    ConversationPage,
    CreatedApiKey,
    FeedbackInfo,
    MessageInfo,
    MessageStatus,
    PrincipalRole,
    RateLimit,
    Role,
    TenantInfo,
    UserInfo,
)
from conversation.users import UserService

__all__ = [
    "PRINCIPAL_ROLES",
    "ApiKeyInfo",
    "ApiKeyService",
    "AuthenticationError",
    "CachedConversation",
    "ConflictError",
    "ConversationError",
    "ConversationInfo",
    "ConversationPage",
    "ConversationService",
    "CreatedApiKey",
    "DatabaseUnavailableError",
    "FeedbackInfo",
    "FeedbackService",
    "HotState",
    "InvalidCursorError",
    "InvalidInputError",
    "MemoryHotState",
    "MessageInfo",
    "MessageStatus",
    "NoHotState",
    "NotFoundError",
    "PrincipalRole",
    "RateLimit",
    "RedisHotState",
    "Role",
    "TenantInfo",
    "TenantService",
    "UserInfo",
    "UserService",
    "async_url",
    "check_health",
    "create_engine",
    "new_id",
    "session_factory",
]
