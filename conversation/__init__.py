"""Conversation domain: tenants, users, API keys, conversations, messages, feedback,
and the labeling queue with its labels.

Services take an ``async_sessionmaker`` (see ``kernel.db``) and return the frozen
values of ``conversation.types``; ORM rows stay inside the package.
"""

from conversation.api_keys import ApiKeyService
from conversation.conversations import MAX_MESSAGE_PAGE_SIZE, ConversationService
from conversation.errors import (
    AlreadyLabelledError,
    AuthenticationError,
    ConflictError,
    ConversationError,
    InvalidInputError,
    InvalidLabelError,
    LeaseLostError,
    NotFoundError,
    TaskCompleteError,
    TaskLeasedError,
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
from conversation.label_export import EXPORT_FORMATS, ExportFormat, SystemPrompt
from conversation.labeling import PRIORITIES, FlagVerdict, LabelingQueue, answer_collection
from conversation.labels import MAX_CORRECTED_ANSWER_CHARS, MAX_NOTE_CHARS
from conversation.streaming import INTERRUPTED_REASON, AnswerStreams
from conversation.tenants import TenantService
from conversation.types import (
    LABEL_CATEGORIES,
    LABELING_SOURCES,
    PRINCIPAL_ROLES,
    ApiKeyInfo,
    ConversationInfo,
    ConversationPage,
    CreatedApiKey,
    FeedbackInfo,
    Label,
    LabelCategory,
    LabelingSource,
    LabelingTask,
    LabelInput,
    MessageInfo,
    MessagePage,
    MessageStatus,
    PrincipalRole,
    RateLimit,
    Role,
    TaskContext,
    TaskFilters,
    TaskStatus,
    TenantInfo,
    UserInfo,
)
from conversation.users import UserService
from kernel.errors import InvalidCursorError
from kernel.ids import new_id

__all__ = [
    "EXPORT_FORMATS",
    "INTERRUPTED_REASON",
    "LABELING_SOURCES",
    "LABEL_CATEGORIES",
    "MAX_CORRECTED_ANSWER_CHARS",
    "MAX_MESSAGE_PAGE_SIZE",
    "MAX_NOTE_CHARS",
    "PRINCIPAL_ROLES",
    "PRIORITIES",
    "AlreadyLabelledError",
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
    "ExportFormat",
    "FeedbackInfo",
    "FeedbackService",
    "FlagVerdict",
    "HotState",
    "InvalidCursorError",
    "InvalidInputError",
    "InvalidLabelError",
    "Label",
    "LabelCategory",
    "LabelInput",
    "LabelingQueue",
    "LabelingSource",
    "LabelingTask",
    "LeaseLostError",
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
    "SystemPrompt",
    "TaskCompleteError",
    "TaskContext",
    "TaskFilters",
    "TaskLeasedError",
    "TaskNotFoundError",
    "TaskStatus",
    "TenantInfo",
    "TenantService",
    "UserInfo",
    "UserService",
    "answer_collection",
    "new_id",
]
