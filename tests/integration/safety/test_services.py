"""Verdict storage on SQLite and PostgreSQL (migrated to head)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY

from safety import Action, Category, Stage, Verdict, VerdictStore, audit_event

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

FLAG = Verdict("harmful", Stage.OUTPUT, Category.VIOLENCE, Action.FLAG, 0.85, "threat")
REDACT = Verdict("pii", Stage.OUTPUT, Category.PII, Action.REDACT, 1.0, "EMAIL x1")
ALLOW = Verdict("injection", Stage.INPUT)


def _ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def _count(stage: str, category: str, action: str) -> float:
    value = REGISTRY.get_sample_value(
        "ragserve:safety_verdicts_total",
        {"stage": stage, "category": category, "action": action},
    )
    return value or 0.0


async def test_verdicts_are_stored_with_the_message_and_counted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, message = _ids()
    store = VerdictStore(sessions)
    before = _count("output", "pii", "redact")
    stored = await store.record(tenant, [FLAG, REDACT, ALLOW], message_id=message, user_id="u1")
    assert [s.verdict for s in stored] == [FLAG, REDACT]
    assert _count("output", "pii", "redact") == before + 1
    again = await store.for_message(tenant, message)
    assert sorted(s.verdict.filter for s in again) == ["harmful", "pii"]
    assert all(s.created_at.tzinfo is not None for s in again)


async def test_another_tenants_verdicts_are_invisible(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, message = _ids()
    store = VerdictStore(sessions)
    await store.record(tenant, [FLAG], message_id=message)
    assert await store.for_message(str(uuid.uuid4()), message) == []


def test_audit_events_name_the_rule_and_never_the_text() -> None:
    event = audit_event(REDACT, tenant_id="t", user_id="u", message_id="m")
    assert event["rule"] == "EMAIL x1"
    assert event["action"] == "redact"
    assert set(event) >= {"tenant_id", "user_id", "at", "filter", "category", "score"}
