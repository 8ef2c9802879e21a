"""The control plane's settings section (``RAGSERVE_ROUTING_*``)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RoutingSettings"]


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_ROUTING_", extra="ignore")

    api_keys: dict[str, SecretStr] = {}
    """Keys of remote endpoints by name, as JSON (``{"openai": "sk-..."}``); a registry
    version names its entry (``api_key_name``), so no key is ever stored in SQL."""
    default_model: str | None = None
    """The model a request that names none gets; unset: the node's own or configured
    model, else the only registered one."""
    refresh_s: float = 2.0
    """How often an API node re-reads the model registry (a change reaches every node
    within this time, without a restart)."""
    failure_threshold: int = 3
    """Failed requests within ``failure_window_s`` that cool an endpoint down."""
    failure_window_s: float = 30.0
    """The window in which failures count toward ``failure_threshold``."""
    cooldown_s: float = 5.0
    """How long a failing endpoint takes no traffic before probes may bring it back."""
    probe_interval_s: float = 2.0
    """Seconds between active health probes of every remote endpoint."""
    max_attempts: int = 3
    """Endpoints a turn may try before its first token (a retry keeps the deadline)."""
    connect_timeout_s: float = 2.0
    """Connect timeout to a remote endpoint; a dead node fails fast and is retried."""
    read_timeout_s: float = 120.0
    """Longest silence allowed on a remote stream before the turn fails."""
    shadow_queue: int = 64
    """Shadow copies that may wait; more are dropped and counted, never queued."""
    shadow_concurrency: int = 2
    """Shadow generations running at once on this node."""
    price_prompt_per_1k: float = 0.0
    """Price per 1,000 prompt tokens of the default version (registry versions carry
    their own)."""
    price_completion_per_1k: float = 0.0
    """Price per 1,000 completion tokens of the default version."""
    price_per_compute_second: float = 0.0
    """Price per second of generation on the embedded engine (default version)."""
