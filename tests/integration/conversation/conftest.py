"""Service fixtures for conversation's contract tests; each runs on SQLite and PostgreSQL
through the root ``sessions`` fixture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conversation import (
    ApiKeyService,
    ConversationService,
    FeedbackService,
    TenantInfo,
    TenantService,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture
def tenants(sessions: async_sessionmaker[AsyncSession]) -> TenantService:
    return TenantService(sessions)


@pytest.fixture
def api_keys(sessions: async_sessionmaker[AsyncSession]) -> ApiKeyService:
    return ApiKeyService(sessions)


@pytest.fixture
def conversations(sessions: async_sessionmaker[AsyncSession]) -> ConversationService:
    return ConversationService(sessions)


@pytest.fixture
def feedback(sessions: async_sessionmaker[AsyncSession]) -> FeedbackService:
    return FeedbackService(sessions)


@pytest.fixture
async def tenant(tenants: TenantService) -> TenantInfo:
    return await tenants.ensure("acme")


@pytest.fixture
async def other_tenant(tenants: TenantService) -> TenantInfo:
    return await tenants.ensure("globex")
