"""Who may see a conversation inside its tenant: its owner and the tenant's admins.

A conversation's owner is the principal subject that created it. A ``user`` or
``labeler`` reaches only its own; an admin reaches every one of its tenant's,
including those created before owners existed (owner ``NULL``), which nobody else
sees. Someone else's conversation is a 404 worded exactly like a missing one, so
ids reveal nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.auth.guards import has_role
from app.core.errors import ResourceNotFoundError

if TYPE_CHECKING:
    from app.auth.principal import Principal
    from conversation import ConversationInfo, ConversationService, MessageInfo

__all__ = ["may_access", "owned_conversation", "owned_message", "owner_filter"]


def may_access(principal: Principal, conversation: ConversationInfo) -> bool:
    """Whether ``principal`` may read or continue ``conversation`` (same tenant assumed)."""
    if conversation.tenant_id != principal.tenant_id:
        return False
    if has_role(principal, "admin"):
        return True
    return conversation.owner is not None and conversation.owner == principal.subject


def owner_filter(principal: Principal) -> str | None:
    """The owner a listing is narrowed to: ``None`` (all of the tenant's) for admins."""
    return None if has_role(principal, "admin") else principal.subject


async def owned_conversation(
    conversations: ConversationService, principal: Principal, conversation_id: str
) -> ConversationInfo:
    """One of the tenant's conversations that ``principal`` may access.

    Raises:
        NotFoundError: No such conversation in the caller's tenant.
        ResourceNotFoundError: Someone else's conversation (the same 404).
    """
    info = await conversations.get(principal.tenant_id, conversation_id)
    if not may_access(principal, info):
        raise ResourceNotFoundError("conversation not found")
    return info


async def owned_message(
    conversations: ConversationService, principal: Principal, message_id: str
) -> MessageInfo:
    """One of the tenant's messages, in a conversation ``principal`` may access.

    Raises:
        NotFoundError: No such message in the caller's tenant.
        ResourceNotFoundError: A message of someone else's conversation (the same 404).
    """
    message = await conversations.get_message(principal.tenant_id, message_id)
    info = await conversations.get(principal.tenant_id, message.conversation_id)
    if not may_access(principal, info):
        raise ResourceNotFoundError("message not found")
    return message
