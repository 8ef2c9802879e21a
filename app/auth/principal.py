"""Who is calling: the ``Principal`` every handler scopes its work to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Principal", "RateLimitOverride", "Role"]

Role = Literal["user", "labeler", "admin"]


@dataclass(frozen=True, slots=True)
class RateLimitOverride:
    """A key's own token bucket, replacing the configured default."""

    burst: int
    rate_per_s: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every handler scopes its work to ``tenant_id``.

    ``subject`` names the caller for rate limits and logs, and owns the
    conversations it creates: ``key:<key id>`` for an API key, ``user:<sub>`` for
    a JWT.
    """

    tenant_id: str
    subject: str
    role: Role = "user"
    scopes: tuple[str, ...] = ()
    key_id: str | None = None
    rate_limit: RateLimitOverride | None = None
    platform_admin: bool = False
    """May see and manage every tenant: set by the authenticator from a stored key
    or the configured allow-list, never from a token's own claims."""
    expires_at: float | None = None
    """When the credential stops being valid (a JWT's ``exp``, Unix seconds); a
    WebSocket closes then. ``None`` for API keys, which live until revoked."""
