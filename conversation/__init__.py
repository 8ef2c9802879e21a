"""Conversation domain: tenants, users, API keys, conversations, messages, feedback
and the labeling queue.

Services take an ``async_sessionmaker`` (see ``kernel.db``) and return the frozen
values of ``conversation.types``; ORM rows stay inside the package.
"""

from conversation.api_keys import ApiKeyService
from conversation.conversations import MAX_MESSAGE_PAGE_SIZE, ConversationService
from conversation.errors import (
    AuthenticationError,
    ConflictError,
    ConversationError,
    InvalidInputError,
    NotFoundError,
    TaskNotFoundError,
)
from conversation.feedback import FeedbackService
from conversation.hot_state import (
    CachedConversation,
    HotState,
    MemoryHotState,
    NoHotState,
    RedisHotState,
)
from conversation.labeling import FlagVerdict, LabelingQueue
from conversation.streaming import INTERRUPTED_REASON, AnswerStreams
from conversation.tenants import TenantService
from conversation.types import (
    PRINCIPAL_ROLES,
    ApiKeyInfo,
    ConversationInfo,
    ConversationPage,
    CreatedApiKey,
    FeedbackInfo,
    LabelingTask,
    MessageInfo,
    MessagePage,
    MessageStatus,
    PrincipalRole,
    RateLimit,
    Role,
    TenantInfo,
    UserInfo,
)
from conversation.users import UserService
from kernel.errors import InvalidCursorError
from kernel.ids import new_id

__all__ = [
    "INTERRUPTED_REASON",
    "MAX_MESSAGE_PAGE_SIZE",
    "PRINCIPAL_ROLES",
    "AnswerStreams",
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
    "FeedbackInfo",
    "FeedbackService",
    "FlagVerdict",
    "HotState",
    "InvalidCursorError",
    "InvalidInputError",
    "LabelingQueue",
    "LabelingTask",
    "MemoryHotState",
    "MessageInfo",
    "MessagePage",
    "MessageStatus",
    "NoHotState",
    "NotFoundError",
    "PrincipalRole",
    "RateLimit",
    "RedisHotState",
    "Role",
    "TaskNotFoundError",
    "TenantInfo",
    "TenantService",
    "UserInfo",
    "UserService",
    "new_id",
]
