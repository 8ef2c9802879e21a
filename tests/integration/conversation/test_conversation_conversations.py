"""Contract tests of ConversationService's conversations on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from conversation import (
    ConversationService,
    FeedbackService,
    InvalidCursorError,
    InvalidInputError,
    NotFoundError,
    TenantInfo,
    new_id,
)
from conversation.models import FeedbackRow, MessageRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def test_create_and_get(conversations: ConversationService, tenant: TenantInfo) -> None:
    created = await conversations.create(tenant.id, title="Pricing")

    assert await conversations.get(tenant.id, created.id) == created
    assert created.title == "Pricing"
    assert created.updated_at.tzinfo is not None


async def test_list_pages_without_duplicates_or_gaps(
    conversations: ConversationService, tenant: TenantInfo, other_tenant: TenantInfo
) -> None:
    created = [await conversations.create(tenant.id) for _ in range(23)]
    await conversations.create(other_tenant.id)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await conversations.list(tenant.id, limit=5, cursor=cursor)
        pages += 1
        seen.extend(item.id for item in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert pages == 5
    assert seen == [conversation.id for conversation in reversed(created)]


async def test_list_puts_recently_updated_first(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    older = await conversations.create(tenant.id)
    newer = await conversations.create(tenant.id)

    await conversations.add_user_message(tenant.id, older.id, "bump")

    page = await conversations.list(tenant.id)
    assert [item.id for item in page.items] == [older.id, newer.id]
    assert page.next_cursor is None


async def test_list_with_ties_on_updated_at(
    conversations: ConversationService,
    tenant: TenantInfo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Guards the id tie-break: rows sharing updated_at must not be skipped or repeated."""
    from conversation.models import ConversationRow

    created = [await conversations.create(tenant.id) for _ in range(7)]
    async with sessions() as session, session.begin():
        rows = await session.scalars(select(ConversationRow))
        for row in rows:
            row.updated_at = created[0].updated_at

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await conversations.list(tenant.id, limit=2, cursor=cursor)
        seen.extend(item.id for item in page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert sorted(seen) == sorted(conversation.id for conversation in created)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(
            json.dumps({"v": 1, "u": "yesterday", "i": "x"}).encode()
        ).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"v": 1, "u": "2024-01-01T00:00:00", "i": new_id()}).encode()
        ).decode(),
        "x" * 1000,
    ],
)
async def test_tampered_cursor_is_refused(
    conversations: ConversationService, tenant: TenantInfo, cursor: str
) -> None:
    with pytest.raises(InvalidCursorError):
        await conversations.list(tenant.id, cursor=cursor)


@pytest.mark.parametrize("limit", [0, 101])
async def test_page_size_is_bounded(
    conversations: ConversationService, tenant: TenantInfo, limit: int
) -> None:
    with pytest.raises(InvalidInputError):
        await conversations.list(tenant.id, limit=limit)


async def test_delete_cascades_to_messages_and_feedback(
    conversations: ConversationService,
    feedback: FeedbackService,
    tenant: TenantInfo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    kept = await conversations.create(tenant.id)
    await conversations.add_user_message(tenant.id, kept.id, "stay")
    doomed = await conversations.create(tenant.id)
    await conversations.add_user_message(tenant.id, doomed.id, "hello")
    answer = await conversations.record_assistant_message(
        tenant_id=tenant.id,
        conversation_id=doomed.id,
        message_id=new_id(),
        content="hi",
        status="complete",
        finish_reason="stop",
        model="smollm2",
        model_version="1",
        sources=[],
        citations=[],
        usage={"prompt_tokens": 3, "completion_tokens": 1},
        timings={"generate": 1.0},
    )
    await feedback.add(tenant.id, answer.id, -1)

    await conversations.delete(tenant.id, doomed.id)

    with pytest.raises(NotFoundError):
        await conversations.get(tenant.id, doomed.id)
    with pytest.raises(NotFoundError):
        await conversations.delete(tenant.id, doomed.id)
    async with sessions() as session:
        messages = await session.scalar(select(func.count()).select_from(MessageRow))
        ratings = await session.scalar(select(func.count()).select_from(FeedbackRow))
    assert (messages, ratings) == (1, 0)
