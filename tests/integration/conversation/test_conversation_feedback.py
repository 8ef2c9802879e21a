"""Contract tests of FeedbackService on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from conversation import (
    ConversationService,
    FeedbackService,
    InvalidInputError,
    MessageInfo,
    NotFoundError,
    TenantInfo,
    new_id,
)


async def _turn(
    conversations: ConversationService, tenant: TenantInfo
) -> tuple[MessageInfo, MessageInfo]:
    conversation = await conversations.create(tenant.id)
    question = await conversations.add_user_message(tenant.id, conversation.id, "question")
    answer = await conversations.record_assistant_message(
        tenant_id=tenant.id,
        conversation_id=conversation.id,
        message_id=new_id(),
        content="answer",
        status="complete",
        finish_reason="stop",
        model="m",
        model_version="1",
        sources=[],
        citations=[],
        usage={"prompt_tokens": 1, "completion_tokens": 1},
        timings={},
    )
    return question, answer


@pytest.mark.parametrize("rating", [1, -1])
async def test_rate_an_assistant_message(
    conversations: ConversationService, feedback: FeedbackService, tenant: TenantInfo, rating: int
) -> None:
    _, answer = await _turn(conversations, tenant)

    given = await feedback.add(tenant.id, answer.id, rating, comment="wrong citation")

    assert (given.message_id, given.rating, given.comment) == (answer.id, rating, "wrong citation")
    assert given.tenant_id == tenant.id


@pytest.mark.parametrize("rating", [0, 2, -2, True])
async def test_rating_must_be_plus_or_minus_one(
    conversations: ConversationService, feedback: FeedbackService, tenant: TenantInfo, rating: int
) -> None:
    _, answer = await _turn(conversations, tenant)

    with pytest.raises(InvalidInputError):
        await feedback.add(tenant.id, answer.id, rating)
    with pytest.raises(ValueError, match="rating"):
        await feedback.add(tenant.id, answer.id, rating)


async def test_user_messages_cannot_be_rated(
    conversations: ConversationService, feedback: FeedbackService, tenant: TenantInfo
) -> None:
    question, _ = await _turn(conversations, tenant)

    with pytest.raises(NotFoundError):
        await feedback.add(tenant.id, question.id, 1)
    with pytest.raises(NotFoundError):
        await feedback.add(tenant.id, new_id(), 1)
