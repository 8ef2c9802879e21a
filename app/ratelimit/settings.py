"""The rate-limit settings section (``RAGSERVE_RATE_LIMIT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RateLimitSettings"]


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_RATE_LIMIT_", extra="ignore")

    enabled: bool = True
    """Enforce per-key and per-tenant token buckets."""
    key_burst: int = Field(default=1000, ge=1)
    """Requests one API key (or JWT subject) may make at once; a key's own limit replaces it."""
    key_rate: float = Field(default=100.0, gt=0)
    """Requests per second refilled into a key's bucket."""
    tenant_burst: int = Field(default=1000, ge=1)
    """Requests all of a tenant's callers may make at once."""
    tenant_rate: float = Field(default=100.0, gt=0)
    """Requests per second refilled into a tenant's bucket."""
    tokens_burst: int = Field(default=100_000, ge=1)
    """Generated tokens a key, and a tenant, may use at once (charged after each turn)."""
    tokens_rate: float = Field(default=2000.0, gt=0)
    """Generated tokens per second refilled into the key's and the tenant's token budget."""
    max_turns_per_key: int = Field(default=8, ge=1)
    """Chat turns one key may run at once on one node (REST, SSE and WebSocket together)."""
    ip_burst: int = Field(default=1200, ge=1)
    """Requests one client address may make at once, checked before authentication
    (generous: many callers may share an address behind a NAT or a proxy)."""
    ip_rate: float = Field(default=200.0, gt=0)
    """Requests per second refilled into an address's bucket."""
    ip_auth_failures_burst: int = Field(default=30, ge=1)
    """Failed authentications (a bad key or token) an address may make before its
    requests are refused, without a database lookup, until the budget refills."""
    ip_auth_failures_rate: float = Field(default=0.5, gt=0)
    """Failed authentications per second refilled into an address's budget."""
