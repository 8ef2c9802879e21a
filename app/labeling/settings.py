"""The labeling queue's settings section (``RAGSERVE_LABELING_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LabelingSettings"]


class LabelingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_LABELING_", extra="ignore")

    lease_s: float = Field(default=300.0, ge=5)
    """Seconds a claimed task stays with its labeler; an open task page renews it, and
    a lease that runs out returns the task to the queue."""
    labels_wanted: int = Field(default=1, ge=1)
    """Labels, each by a different labeler, a new task takes before it is done (the
    overlap); enforced when a label is submitted, however many submit at once."""
    low_score: float = Field(default=0.4, ge=-1.0, le=1.0)
    """A complete answer whose best source (of those in its prompt) is less similar to
    the question than this (cosine, all-MiniLM-L6-v2) is queued for review as
    ``low_retrieval``. Measured on ragserve's own docs: questions they answer find a
    best chunk at 0.45-0.75, ones they barely touch 0.29-0.32, off-topic ones
    0.20-0.23 (the hybrid search's fused score is a rank and cannot tell these
    apart). An answer without sources is not queued: it said no document matched."""
