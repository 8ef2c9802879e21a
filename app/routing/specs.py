"""What the registry says is served: models, their versions and each model's rollout.

Plain frozen values, read from SQL (``app/routing/registry.py``) or from the settings
(``RAGSERVE_GENERATION_BACKEND_URLS``, the embedded engine), and handed to the router
and the rollout logic, which never touch the database themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "EMBEDDED_URL",
    "Backend",
    "EndpointSpec",
    "ModelSpec",
    "RolloutSpec",
    "SamplingDefaults",
    "ShadowSpec",
    "VersionSpec",
    "served_id",
]

Backend = Literal["embedded", "remote"]
"""``embedded``: this process's engine; ``remote``: OpenAI-compatible servers."""

EMBEDDED_URL = "embedded://local"
"""The one endpoint of an embedded version: the engine inside this process."""


def served_id(name: str) -> str:
    """The stable, lower-case id a model is served under (``smollm2-135m-instruct``)."""
    return "-".join(name.strip().lower().split())


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One server of a version: an OpenAI-compatible base URL and its share of traffic."""

    url: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SamplingDefaults:
    """A version's sampling defaults and limits; ``None`` keeps the node's setting."""

    temperature: float | None = None
    max_tokens: int | None = None
    max_tokens_limit: int | None = None
    context_tokens: int | None = None
    """The upstream model's context window, when smaller than the prompt budgets."""


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """One servable version of a model.

    Attributes:
        model: The public model name clients send.
        version: The version's name, unique within its model (``v1``, ``2026-11-rc``).
        backend: Where it runs.
        endpoints: The servers of a ``remote`` version (one ``EMBEDDED_URL`` otherwise).
        upstream_model: The model name sent to the servers; ``None`` asks them
            (``GET /v1/models``) and uses the first.
        api_key_name: Which entry of ``RAGSERVE_ROUTING_API_KEYS`` holds the servers'
            API key (the key itself is never stored in the registry).
        price_prompt_per_1k: Currency units per 1,000 prompt tokens.
        price_completion_per_1k: Currency units per 1,000 completion tokens.
        price_per_compute_second: Currency units per second of generation on the
            embedded engine.
    """

    model: str
    version: str
    backend: Backend
    endpoints: tuple[EndpointSpec, ...] = ()
    upstream_model: str | None = None
    api_key_name: str | None = None
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    price_per_compute_second: float = 0.0

    @property
    def key(self) -> str:
        """``model@version``, as metrics and logs name a version."""
        return f"{self.model}@{self.version}"

    def cost(self, prompt_tokens: int, completion_tokens: int, compute_seconds: float) -> float:
        """What one answer cost at this version's prices."""
        return (
            prompt_tokens * self.price_prompt_per_1k / 1000
            + completion_tokens * self.price_completion_per_1k / 1000
            + compute_seconds * self.price_per_compute_second
        )


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    """A version that gets a sampled copy of live turns, off the user's path."""

    version: str
    sample_rate: float


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """How a model's traffic is split between its versions.

    Attributes:
        stable: The version that answers by default.
        canary: A version that answers ``canary_percent`` % of conversations.
        canary_percent: 0 to 100.
        tenant_pins: Tenant id to version: that tenant's turns always go there (A/B
            by tenant), whatever the canary split says.
        shadows: Versions that get a copy of sampled turns; never shown.
    """

    stable: str
    canary: str | None = None
    canary_percent: float = 0.0
    tenant_pins: dict[str, str] = field(default_factory=dict)
    shadows: tuple[ShadowSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A public model: its versions, its rollout and who may use it.

    ``tenants`` is ``None`` when every tenant may use the model.
    """

    name: str
    versions: dict[str, VersionSpec]
    rollout: RolloutSpec
    tenants: frozenset[str] | None = None
    description: str = ""

    def allows(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants
