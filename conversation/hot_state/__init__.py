"""The hot conversation state: the header and recent messages of active conversations.

``base`` holds the interface (``HotState``), its values and the null ``NoHotState``;
``memory`` runs it in-process (one API process), ``redis`` shares it between the
API processes of a deployment. Which one serves is configuration.
"""

from conversation.hot_state.base import (
    CachedConversation,
    HotState,
    Lookup,
    NoHotState,
    PendingWrite,
)
from conversation.hot_state.memory import MemoryHotState
from conversation.hot_state.redis import RedisHotState

__all__ = [
    "CachedConversation",
    "HotState",
    "Lookup",
    "MemoryHotState",
    "NoHotState",
    "PendingWrite",
    "RedisHotState",
]
