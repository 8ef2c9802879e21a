"""API-key authentication: ``Authorization: Bearer <key>`` resolves to a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.errors import UnauthorizedError
from app.services import Services
from conversation import ApiKeyService
from conversation.errors import AuthenticationError

Role = Literal["user", "labeler", "admin"]


@dataclass(frozen=True, slots=True)
class RateLimitOverride:
    """A key's own token bucket, replacing the configured default."""

    burst: int
    rate_per_s: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every handler scopes its work to ``tenant_id``.

    ``subject`` names the caller for rate limits and logs: ``key:<key id>`` for an
    API key, ``user:<sub>`` for a JWT.
    """

    tenant_id: str
    subject: str
    role: Role = "user"
    scopes: tuple[str, ...] = ()
    key_id: str | None = None
    rate_limit: RateLimitOverride | None = None


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; raises ``UnauthorizedError``."""
    if not header:
        raise UnauthorizedError("Missing Authorization header; send 'Authorization: Bearer <key>'.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("The Authorization header must be 'Bearer <key>'.")
    return token.strip()


async def authenticate(api_keys: ApiKeyService, token: str) -> Principal:
    """The principal of an API key; raises ``UnauthorizedError``."""
    try:
        key = await api_keys.authenticate(token)
    except AuthenticationError as exc:
        raise UnauthorizedError("Invalid or revoked API key.") from exc
    return Principal(
        tenant_id=key.tenant_id, subject=f"key:{key.id}", key_id=key.id, scopes=tuple(key.scopes)
    )


class ApiKeyAuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to a ``Principal`` for every route but the excluded ones."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        services: Services = connection.app.state.services
        token = bearer_token(connection.headers.get("authorization"))
        principal = await authenticate(services.api_keys, token)
        return AuthenticationResult(user=principal, auth=token)
