"""Contract tests of ConversationService's messages on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from conversation import (
    ConflictError,
    ConversationService,
    InvalidCursorError,
    InvalidInputError,
    MemoryHotState,
    NotFoundError,
    TenantInfo,
    new_id,
)

SOURCES = [
    {"chunk_id": "c1", "document": "guide.md", "score": 0.91, "text": "Café ☕ opens at 8."},
    {"chunk_id": "c2", "document": "faq.pdf", "score": 0.5, "page": 3, "tags": ["a", "b"]},
]
CITATIONS = [{"index": 1, "chunk_id": "c1", "span": [0, 12]}]
USAGE = {"prompt_tokens": 412, "completion_tokens": 37}
TIMINGS = {"retrieve": 12.5, "generate": 830.25, "safety_out": 0.75}


async def test_messages_come_back_oldest_first(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    conversation = await conversations.create(tenant.id)
    ids = []
    for turn in range(5):
        user = await conversations.add_user_message(tenant.id, conversation.id, f"q{turn}")
        answer = await conversations.record_assistant_message(
            tenant_id=tenant.id,
            conversation_id=conversation.id,
            message_id=new_id(),
            content=f"a{turn}",
            status="complete",
            finish_reason="stop",
            model="m",
            model_version=None,
            sources=[],
            citations=[],
            usage={},
            timings={},
        )
        ids += [user.id, answer.id]

    messages = await conversations.messages(tenant.id, conversation.id)
    assert [message.id for message in messages] == ids
    assert [message.content for message in messages[:4]] == ["q0", "a0", "q1", "a1"]
    created = [message.created_at for message in messages]
    assert created == sorted(created)
    assert len(set(created)) == len(created)

    recent = await conversations.recent_messages(tenant.id, conversation.id, limit=3)
    assert [message.id for message in recent] == ids[-3:]
    assert await conversations.recent_messages(tenant.id, conversation.id, limit=0) == []


async def test_first_user_message_titles_the_conversation(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    conversation = await conversations.create(tenant.id)
    long_question = "How   do I rotate " + "my API key " * 20 + "\nsecond line"

    message = await conversations.add_user_message(tenant.id, conversation.id, long_question)
    await conversations.add_user_message(tenant.id, conversation.id, "another question")

    stored = await conversations.get(tenant.id, conversation.id)
    assert stored.title is not None
    assert stored.title.startswith("How do I rotate my API key")
    assert len(stored.title) <= 80
    assert stored.updated_at >= message.created_at
    assert message.role == "user"
    assert message.status == "complete"


async def test_titled_conversation_keeps_its_title(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    conversation = await conversations.create(tenant.id, title="Mine")
    await conversations.add_user_message(tenant.id, conversation.id, "question")

    assert (await conversations.get(tenant.id, conversation.id)).title == "Mine"


async def test_assistant_message_stores_every_field(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    conversation = await conversations.create(tenant.id)
    message_id = new_id()

    recorded = await conversations.record_assistant_message(
        tenant_id=tenant.id,
        conversation_id=conversation.id,
        message_id=message_id,
        content="It opens at 8 [1].",
        status="cancelled",
        finish_reason="cancelled",
        model="smollm2-135m",
        model_version="2024-11",
        sources=SOURCES,
        citations=CITATIONS,
        usage=USAGE,
        timings=TIMINGS,
        error="client went away",
        error_code="cancelled_by_client",
    )

    stored = await conversations.get_message(tenant.id, message_id)
    assert stored == recorded
    assert stored.id == message_id
    assert stored.role == "assistant"
    assert stored.status == "cancelled"
    assert stored.finish_reason == "cancelled"
    assert (stored.model, stored.model_version) == ("smollm2-135m", "2024-11")
    assert stored.sources == SOURCES
    assert stored.citations == CITATIONS
    assert stored.usage == USAGE
    assert stored.timings == TIMINGS
    assert (stored.error, stored.error_code) == ("client went away", "cancelled_by_client")
    assert stored.created_at.tzinfo is not None


async def test_assistant_message_id_is_unique(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    conversation = await conversations.create(tenant.id)
    kwargs: dict[str, Any] = {
        "tenant_id": tenant.id,
        "conversation_id": conversation.id,
        "message_id": new_id(),
        "content": "x",
        "status": "complete",
        "finish_reason": "stop",
        "model": "m",
        "model_version": None,
        "sources": [],
        "citations": [],
        "usage": {},
        "timings": {},
    }
    await conversations.record_assistant_message(**kwargs)

    with pytest.raises(ConflictError):
        await conversations.record_assistant_message(**kwargs)
    with pytest.raises(InvalidInputError):
        await conversations.record_assistant_message(**{**kwargs, "status": "done"})


async def test_messages_of_a_missing_conversation(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    missing = new_id()
    with pytest.raises(NotFoundError):
        await conversations.messages(tenant.id, missing)
    with pytest.raises(NotFoundError):
        await conversations.add_user_message(tenant.id, missing, "hi")
    with pytest.raises(NotFoundError):
        await conversations.get_message(tenant.id, missing)


async def test_empty_user_message_is_refused(
    conversations: ConversationService, tenant: TenantInfo
) -> None:
    conversation = await conversations.create(tenant.id)
    with pytest.raises(InvalidInputError):
        await conversations.add_user_message(tenant.id, conversation.id, "  \n")


@pytest.mark.parametrize("hot", [False, True], ids=["sql", "hot"])
async def test_messages_page_back_from_the_newest_without_gaps_or_duplicates(
    sessions: Any, tenant: TenantInfo, hot: bool
) -> None:
    """Guards issue 16's bound: a conversation is read a page at a time (newest page
    first, each oldest first, ``next_cursor`` to the older ones), from SQL or with
    the newest messages hot; messages added while paging do not shift older pages."""
    conversations = ConversationService(sessions, MemoryHotState(max_messages=4) if hot else None)
    conversation = await conversations.create(tenant.id)
    ids = [
        (await conversations.add_user_message(tenant.id, conversation.id, f"m{i}")).id
        for i in range(7)
    ]
    first = await conversations.message_page(tenant.id, conversation.id, limit=3)
    assert [m.id for m in first.items] == ids[4:]
    assert first.next_cursor is not None
    # A message added now is newer than every page a client pages back to.
    await conversations.add_user_message(tenant.id, conversation.id, "late")
    second = await conversations.message_page(
        tenant.id, conversation.id, limit=3, cursor=first.next_cursor
    )
    assert [m.id for m in second.items] == ids[1:4]
    assert second.next_cursor is not None
    last = await conversations.message_page(
        tenant.id, conversation.id, limit=3, cursor=second.next_cursor
    )
    assert [m.id for m in last.items] == ids[:1]
    assert last.next_cursor is None
    whole = await conversations.message_page(tenant.id, conversation.id, limit=200)
    assert [m.content for m in whole.items] == [f"m{i}" for i in range(7)] + ["late"]
    assert whole.next_cursor is None
    for limit in (0, 201):
        with pytest.raises(InvalidInputError):
            await conversations.message_page(tenant.id, conversation.id, limit=limit)
    with pytest.raises(InvalidCursorError):
        await conversations.message_page(tenant.id, conversation.id, cursor="garbage")
    with pytest.raises(NotFoundError):
        await conversations.message_page("other-tenant", conversation.id, cursor=first.next_cursor)
