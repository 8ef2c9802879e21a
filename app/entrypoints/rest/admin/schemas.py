"""Wire schemas of ``/v1/admin``: tenants, users and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from app.entrypoints.schemas import Schema
from conversation import ApiKeyInfo, CreatedApiKey, RateLimit, TenantInfo, UserInfo

RoleName = Literal["user", "labeler", "admin"]
Scope = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$")]


class TenantCreate(Schema):
    name: str = Field(min_length=1, max_length=128, pattern=r"\S")


class TenantOut(Schema):
    id: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, info: TenantInfo) -> TenantOut:
        return cls(id=info.id, name=info.name, created_at=info.created_at)


class TenantList(Schema):
    items: list[TenantOut]


class UserCreate(Schema):
    subject: str = Field(min_length=1, max_length=255, pattern=r"\S")
    """The identity provider's ``sub`` of this person."""
    name: str | None = Field(default=None, max_length=200)
    role: RoleName = "user"


class UserUpdate(Schema):
    """Fields to change; at least one."""

    model_config = ConfigDict(
        **Schema.model_config,
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                for name in ("role", "name", "disabled")
            ]
        },
    )

    role: RoleName | None = None
    name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> UserUpdate:
        if self.role is None and self.name is None and self.disabled is None:
            raise ValueError("give at least one of role, name, disabled")
        return self


class UserOut(Schema):
    id: str
    tenant_id: str
    subject: str
    name: str | None
    role: RoleName
    created_at: datetime
    disabled_at: datetime | None
    disabled: bool

    @classmethod
    def of(cls, info: UserInfo) -> UserOut:
        return cls(
            id=info.id,
            tenant_id=info.tenant_id,
            subject=info.subject,
            name=info.name,
            role=info.role,
            created_at=info.created_at,
            disabled_at=info.disabled_at,
            disabled=info.disabled,
        )


class UserList(Schema):
    items: list[UserOut]


class RateLimitIn(Schema):
    """A key's own token bucket (replaces the configured default for that key)."""

    burst: int = Field(gt=0, le=1_000_000_000)
    rate_per_s: float = Field(gt=0, le=1_000_000_000, allow_inf_nan=False)

    def to_rate_limit(self) -> RateLimit:
        return RateLimit(burst=self.burst, rate_per_s=self.rate_per_s)


class RateLimitOut(Schema):
    burst: int
    rate_per_s: float


class ApiKeyCreate(Schema):
    name: str = Field(default="default", min_length=1, max_length=128, pattern=r"\S")
    role: RoleName = "user"
    scopes: list[Scope] = Field(default_factory=lambda: ["chat"], max_length=32)
    rate_limit: RateLimitIn | None = None


class ApiKeyOut(Schema):
    """A key as it may be shown again: its prefix, never its secret."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    role: RoleName
    scopes: list[str]
    rate_limit: RateLimitOut | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, info: ApiKeyInfo) -> ApiKeyOut:
        limit = info.rate_limit
        return cls(
            id=info.id,
            tenant_id=info.tenant_id,
            name=info.name,
            prefix=info.prefix,
            role=info.role,
            scopes=list(info.scopes),
            rate_limit=None
            if limit is None
            else RateLimitOut(burst=limit.burst, rate_per_s=limit.rate_per_s),
            created_at=info.created_at,
            last_used_at=info.last_used_at,
            revoked_at=info.revoked_at,
            revoked=info.revoked,
        )


class ApiKeyCreated(Schema):
    """A new key: ``secret`` is shown in this answer only and never again."""

    key: ApiKeyOut
    secret: str

    @classmethod
    def of(cls, created: CreatedApiKey) -> ApiKeyCreated:
        return cls(key=ApiKeyOut.of(created.info), secret=created.secret)


class ApiKeyList(Schema):
    items: list[ApiKeyOut]
