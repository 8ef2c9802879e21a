"""Tenant isolation: another tenant's objects behave exactly like missing ones (a 404)."""

from __future__ import annotations

import pytest

from conversation import (
    ConversationService,
    FeedbackService,
    NotFoundError,
    TenantInfo,
    new_id,
)


async def test_other_tenant_sees_nothing(
    conversations: ConversationService,
    feedback: FeedbackService,
    tenant: TenantInfo,
    other_tenant: TenantInfo,
) -> None:
    conversation = await conversations.create(tenant.id)
    question = await conversations.add_user_message(tenant.id, conversation.id, "secret plan")
    answer = await conversations.record_assistant_message(
        tenant_id=tenant.id,
        conversation_id=conversation.id,
        message_id=new_id(),
        content="noted",
        status="complete",
        finish_reason="stop",
        model="m",
        model_version=None,
        sources=[],
        citations=[],
        usage={},
        timings={},
    )
    intruder = other_tenant.id

    with pytest.raises(NotFoundError):
        await conversations.get(intruder, conversation.id)
    with pytest.raises(NotFoundError):
        await conversations.messages(intruder, conversation.id)
    with pytest.raises(NotFoundError):
        await conversations.recent_messages(intruder, conversation.id, limit=5)
    with pytest.raises(NotFoundError):
        await conversations.add_user_message(intruder, conversation.id, "me too")
    with pytest.raises(NotFoundError):
        await conversations.record_assistant_message(
            tenant_id=intruder,
            conversation_id=conversation.id,
            message_id=new_id(),
            content="x",
            status="complete",
            finish_reason="stop",
            model="m",
            model_version=None,
            sources=[],
            citations=[],
            usage={},
            timings={},
        )
    with pytest.raises(NotFoundError):
        await conversations.get_message(intruder, question.id)
    with pytest.raises(NotFoundError):
        await feedback.add(intruder, answer.id, -1)
    with pytest.raises(NotFoundError):
        await conversations.delete(intruder, conversation.id)
    assert (await conversations.list(intruder)).items == []

    # The owner still sees everything, untouched.
    assert len(await conversations.messages(tenant.id, conversation.id)) == 2
