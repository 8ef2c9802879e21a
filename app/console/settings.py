"""The admin console's settings section (``RAGSERVE_CONSOLE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConsoleSettings"]


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_CONSOLE_", extra="ignore")

    enabled: bool = True
    """Serve the web console under ``/admin`` (its pages need a console user:
    ``ragserve users create``)."""
    session_idle_s: float = Field(default=1800.0, gt=0)
    """A console session unused this long ends (every page or request renews it)."""
    session_absolute_s: float = Field(default=12 * 3600.0, gt=0)
    """A console session ends this long after sign-in, however busy."""
    secure_cookies: bool | None = None
    """Mark the session cookie ``Secure``. Unset: when the request came over TLS
    (``https``, also as told by a proxy's ``X-Forwarded-Proto`` when the server
    trusts it)."""
    login_attempts_per_account: int = Field(default=5, ge=1)
    """Failed sign-ins one account may take in a burst before it is slowed to the
    refill rate below."""
    login_attempts_per_ip: int = Field(default=20, ge=1)
    """Sign-ins (failed or not) one client address may try in a burst."""
    login_refill_s: float = Field(default=60.0, gt=0)
    """Seconds to earn back one sign-in attempt, per account and per address."""
    metrics_interval_s: float = Field(default=10.0, gt=0)
    """How often the metrics page's history samples this process's metrics."""
