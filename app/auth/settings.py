"""The authentication settings section (``RAGSERVE_AUTH_*``): API keys and JWTs."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["AuthSettings"]

_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
_PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class AuthSettings(BaseSettings):
    """How callers authenticate: API keys always, JWTs once a key is configured."""

    # NOTE: hide_input_in_errors keeps the secret out of a startup error's text.
    model_config = SettingsConfigDict(
        env_prefix="RAGSERVE_AUTH_", extra="ignore", hide_input_in_errors=True
    )

    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256"])
    """JWT algorithms accepted, comma-separated (``HS256`` or ``RS256,ES256``); one
    family only (HMAC or public-key); anything else, ``none`` included, is rejected."""
    jwt_secret: SecretStr | None = None
    """Shared secret of the HS* algorithms; setting it (or a public key) turns JWTs on."""
    jwt_public_key_file: Path | None = None
    """PEM public key of the RS*/PS*/ES*/EdDSA algorithms."""
    jwt_audience: str | None = None
    """Required ``aud`` of every token; must be set when JWTs are on."""
    jwt_issuer: str | None = None
    """Required ``iss`` of every token; must be set when JWTs are on."""
    jwt_leeway_s: float = Field(default=30.0, ge=0.0, le=300.0)
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``, in seconds."""
    jwt_tenant_claim: str = "tenant_id"
    """Claim holding the caller's tenant id."""
    jwt_role_claim: str = "role"
    """Claim holding the caller's role (``user`` when absent; unknown values are rejected)."""
    jwt_scopes_claim: str = "scope"
    """Claim holding scopes: a space-separated string (OAuth 2) or a list."""
    jwt_require_user: bool = True
    """Accept a token only when its ``sub`` is a user of its tenant (``/v1/admin/.../users``),
    so an admin can disable or demote anyone; ``false`` trusts the token's role claim."""
    jwt_default_scopes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["chat"])
    """Scopes of a token without a scope claim, comma-separated (API keys store their own)."""
    platform_admin_scope: str = "platform:admin"
    """Scope of a stored admin API key that may see and manage every tenant, not only
    its own. A JWT's own scope claim never grants it (see ``platform_admin_subjects``)."""
    platform_admin_subjects: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """JWT ``sub`` values, comma-separated, whose admin tokens manage every tenant."""

    ops_token: SecretStr | None = None
    """Bearer token for ``/metrics`` and the per-check detail of ``/readyz`` (what
    Prometheus and operators send); without it, and unless ``ops_public``, both
    stay closed: ``/metrics`` answers 401 and ``/readyz`` only its status."""
    ops_public: bool = False
    """Serve ``/metrics`` and the ``/readyz`` detail to anyone (a private network only)."""

    _public_key: str | None = PrivateAttr(default=None)

    @field_validator(
        "jwt_algorithms", "jwt_default_scopes", "platform_admin_subjects", mode="before"
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_jwt(self) -> Self:
        algorithms = set(self.jwt_algorithms)
        unknown = algorithms - _HMAC_ALGORITHMS - _PUBLIC_KEY_ALGORITHMS
        if not algorithms or unknown:
            raise ValueError(f"RAGSERVE_AUTH_JWT_ALGORITHMS: unsupported {sorted(unknown)}")
        hmac = algorithms <= _HMAC_ALGORITHMS
        if not hmac and not algorithms <= _PUBLIC_KEY_ALGORITHMS:
            # NOTE: mixing families is how "RS256 public key used as an HS256
            # secret" forgeries get in; one family per deployment rules it out.
            raise ValueError("RAGSERVE_AUTH_JWT_ALGORITHMS mixes HMAC and public-key algorithms")
        if self.jwt_secret is not None and self.jwt_public_key_file is not None:
            raise ValueError("set RAGSERVE_AUTH_JWT_SECRET or _PUBLIC_KEY_FILE, not both")
        if self.jwt_secret is not None and not hmac:
            raise ValueError("RAGSERVE_AUTH_JWT_SECRET needs HS* algorithms")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            # RFC 7518 §3.2: an HMAC key at least as long as the hash output.
            raise ValueError("RAGSERVE_AUTH_JWT_SECRET must have at least 32 characters")
        if self.jwt_public_key_file is not None:
            if hmac:
                raise ValueError("RAGSERVE_AUTH_JWT_PUBLIC_KEY_FILE needs RS*/PS*/ES*/EdDSA")
            self._public_key = self.jwt_public_key_file.read_text()
        if self.jwt_enabled and not (self.jwt_audience and self.jwt_issuer):
            raise ValueError("JWTs need RAGSERVE_AUTH_JWT_AUDIENCE and RAGSERVE_AUTH_JWT_ISSUER")
        return self

    def ops_allowed(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header may read ``/metrics`` and ``/readyz`` details."""
        if self.ops_public:
            return True
        if self.ops_token is None or not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        expected = self.ops_token.get_secret_value().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    @property
    def jwt_enabled(self) -> bool:
        """Whether JWTs are accepted (a secret or a public key is configured)."""
        return self.jwt_secret is not None or self.jwt_public_key_file is not None

    @property
    def jwt_key(self) -> str | None:
        """The key tokens are verified with: the secret or the public key's PEM text."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return self._public_key
