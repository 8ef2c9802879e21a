"""The batch jobs settings section (``RAGSERVE_BATCH_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BatchSettings"]


class BatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_BATCH_", extra="ignore")

    workers: int = Field(default=4, ge=0)
    """Batches this process runs at once (0: it runs none; another node does). Their
    lines share ``concurrency``; while another tenant's batch waits, no tenant takes
    the last free one for a second batch, and a busy tenant's batch gives way after
    ``quantum_s``."""
    quantum_s: float = Field(default=30.0, gt=0)
    """Seconds a batch runs before it gives way to another tenant's waiting batch
    when every worker here is taken (it resumes later where it stopped)."""
    concurrency: int = Field(default=8, ge=1)
    """Lines of all running batches in flight at once on this process, shared
    round-robin between tenants. The engine runs them in its batch class: they only
    take the slots online requests leave free."""
    stream: str = "batches"
    """Redis stream of batch jobs, under ``RAGSERVE_REDIS_KEY_PREFIX``."""
    group: str = "batch-workers"
    """Consumer group every node's batch workers join."""
    claim_idle_s: float = Field(default=60.0, gt=0)
    """Seconds after which a batch nobody renewed (its worker died) goes to another
    worker, which resumes it after the lines already answered."""
    max_deliveries: int = Field(default=10, ge=1)
    """Deliveries of a batch before it is given up on and marked failed."""
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """Largest uploaded file; a larger one is refused with 413."""
    max_lines: int = Field(default=50_000, ge=1)
    """Most requests in one batch input file (OpenAI's limit)."""
    max_queued_lines: int = Field(default=100_000, ge=1)
    """Lines a tenant may have waiting in unfinished batches; more is refused (429)."""
    max_queued_tokens: int = Field(default=20_000_000, ge=1)
    """Tokens (prompt estimate plus ``max_tokens``) a tenant may have waiting; more is
    refused (429 ``batch_quota_exceeded``)."""
    file_ttl_s: float = Field(default=30 * 86400, gt=0)
    """Seconds a file (input, output or errors) is kept, then deleted."""
    cleanup_interval_s: float = Field(default=300.0, gt=0)
    """How often expired batches and files are swept."""
