"""Wire schemas of ``/v1/admin/models``: the model registry, rollouts, shadow summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from app.entrypoints.schemas import Schema
from app.routing.specs import (
    EndpointSpec,
    ModelSpec,
    RolloutSpec,
    SamplingDefaults,
    ShadowSpec,
    VersionSpec,
)

# NOTE: the registry's rules for the name of a model or version it registers
# (``app.routing.registry``), stated on those requests only: a node's own default
# version, which answers lists and rollouts, may be named otherwise.
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._:-]{0,127}$"
VERSION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
VersionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ModelCreate(Schema):
    name: ModelName = Field(pattern=MODEL_NAME_PATTERN)
    """The public name clients send (lower case, digits, ``.``, ``_``, ``:``, ``-``)."""
    description: str = Field(default="", max_length=2000)
    # NOTE: not ``tenants``: Litestar reports a bad body field named like one of the
    # handler's dependencies (the ``tenants`` service) as a failed dependency, a 500.
    allowed_tenants: list[Annotated[str, StringConstraints(min_length=1, max_length=36)]] | None = (
        Field(default=None, max_length=1000)
    )
    """Tenant ids that may use the model; unset: every tenant."""


class Endpoint(Schema):
    url: str = Field(min_length=1, max_length=512)
    weight: float = Field(default=1.0, gt=0, le=1000)


class Sampling(Schema):
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_tokens_limit: int | None = Field(default=None, ge=1)
    context_tokens: int | None = Field(default=None, ge=1)


class VersionCreate(Schema):
    version: VersionName = Field(pattern=VERSION_NAME_PATTERN)
    backend: Literal["embedded", "remote"]
    endpoints: list[Endpoint] = Field(default_factory=list, max_length=64)
    upstream_model: str | None = Field(default=None, min_length=1, max_length=256)
    api_key_name: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]{1,128}$"
    )
    """The entry of ``RAGSERVE_ROUTING_API_KEYS`` that holds the servers' key."""
    sampling: Sampling = Field(default_factory=Sampling)
    price_prompt_per_1k: float = Field(default=0.0, ge=0, le=1e6)
    price_completion_per_1k: float = Field(default=0.0, ge=0, le=1e6)
    price_per_compute_second: float = Field(default=0.0, ge=0, le=1e6)

    def to_spec(self, model: str) -> VersionSpec:
        return VersionSpec(
            model=model,
            version=self.version,
            backend=self.backend,
            endpoints=tuple(EndpointSpec(e.url.rstrip("/"), e.weight) for e in self.endpoints),
            upstream_model=self.upstream_model,
            api_key_name=self.api_key_name,
            sampling=SamplingDefaults(**self.sampling.model_dump()),
            price_prompt_per_1k=self.price_prompt_per_1k,
            price_completion_per_1k=self.price_completion_per_1k,
            price_per_compute_second=self.price_per_compute_second,
        )


class Shadow(Schema):
    version: VersionName
    sample_rate: float = Field(gt=0, le=1)


class RolloutUpdate(Schema):
    """A model's whole rollout: what is not given is cleared."""

    stable: VersionName
    canary: VersionName | None = None
    canary_percent: float = Field(default=0.0, ge=0, le=100)
    tenant_pins: dict[Annotated[str, StringConstraints(max_length=36)], VersionName] = Field(
        default_factory=dict, max_length=1000
    )
    shadows: list[Shadow] = Field(default_factory=list, max_length=8)

    def to_spec(self) -> RolloutSpec:
        return RolloutSpec(
            stable=self.stable,
            canary=self.canary,
            canary_percent=self.canary_percent,
            tenant_pins=dict(self.tenant_pins),
            shadows=tuple(ShadowSpec(s.version, s.sample_rate) for s in self.shadows),
        )


class VersionOut(Schema):
    version: str
    backend: str
    endpoints: list[Endpoint]
    upstream_model: str | None
    api_key_name: str | None
    sampling: Sampling
    price_prompt_per_1k: float
    price_completion_per_1k: float
    price_per_compute_second: float

    @classmethod
    def of(cls, spec: VersionSpec) -> VersionOut:
        return cls(
            version=spec.version,
            backend=spec.backend,
            endpoints=[Endpoint(url=e.url, weight=e.weight) for e in spec.endpoints],
            upstream_model=spec.upstream_model,
            api_key_name=spec.api_key_name,
            sampling=Sampling(
                temperature=spec.sampling.temperature,
                max_tokens=spec.sampling.max_tokens,
                max_tokens_limit=spec.sampling.max_tokens_limit,
                context_tokens=spec.sampling.context_tokens,
            ),
            price_prompt_per_1k=spec.price_prompt_per_1k,
            price_completion_per_1k=spec.price_completion_per_1k,
            price_per_compute_second=spec.price_per_compute_second,
        )


class ModelOut(Schema):
    name: str
    description: str
    allowed_tenants: list[str] | None
    versions: list[VersionOut]
    rollout: RolloutUpdate
    registered: bool
    """False for the node's own default model, which lives in its settings."""

    @classmethod
    def of(cls, spec: ModelSpec, *, registered: bool = True) -> ModelOut:
        r = spec.rollout
        return cls(
            name=spec.name,
            description=spec.description,
            allowed_tenants=None if spec.tenants is None else sorted(spec.tenants),
            versions=[VersionOut.of(v) for _, v in sorted(spec.versions.items())],
            rollout=RolloutUpdate(
                stable=r.stable,
                canary=r.canary,
                canary_percent=r.canary_percent,
                tenant_pins=dict(r.tenant_pins),
                shadows=[Shadow(version=s.version, sample_rate=s.sample_rate) for s in r.shadows],
            ),
            registered=registered,
        )


class ModelOutList(Schema):
    items: list[ModelOut]


class ShadowSummary(Schema):
    """A shadow version against the answers users were shown, over a window."""

    model: str
    version: str
    since: datetime
    until: datetime
    answers: int
    failed: int
    primary_versions: list[str]
    similarity: dict[str, float | None]
    citation_overlap: dict[str, float | None]
    length: dict[str, float | None]
    primary_length: dict[str, float | None]
    ttft_ms: dict[str, float | None]
    primary_ttft_ms: dict[str, float | None]
    latency_ms: dict[str, float | None]
    primary_latency_ms: dict[str, float | None]


class EndpointHealth(Schema):
    model: str
    version: str
    url: str
    state: dict[str, Any]


class RoutingHealth(Schema):
    endpoints: list[dict[str, Any]]


class VersionUsage(Schema):
    model: str
    version: str
    turns: int
    prompt_tokens: int
    completion_tokens: int
    compute_seconds: float
    cost: float


class UsageReport(Schema):
    tenant_id: str
    since: datetime
    until: datetime
    turns: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    by_version: list[VersionUsage]
