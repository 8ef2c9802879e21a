"""The app's labeling queue: ``conversation.LabelingQueue`` as the settings shape it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.chat.prompt import stored_system_message
from conversation import LabelingQueue

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.core.settings import Settings

__all__ = ["build_labeling_queue"]


def build_labeling_queue(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> LabelingQueue:
    """The labeling queue, its exports' system messages rendered as turns render them."""
    return LabelingQueue(
        sessions,
        labels_wanted=settings.labeling.labels_wanted,
        system_prompt=stored_system_message,
    )
