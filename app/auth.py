"""API-key authentication: ``Authorization: Bearer <key>`` resolves to a tenant."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.errors import UnauthorizedError
from app.services import Services
from conversation import ApiKeyService
from conversation.errors import AuthenticationError


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every handler scopes its work to ``tenant_id``."""

    tenant_id: str
    key_id: str
    scopes: tuple[str, ...]


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
    return Principal(tenant_id=key.tenant_id, key_id=key.id, scopes=tuple(key.scopes))


class ApiKeyAuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to a ``Principal`` for every route but the excluded ones."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        services: Services = connection.app.state.services
        token = bearer_token(connection.headers.get("authorization"))
        principal = await authenticate(services.api_keys, token)
        return AuthenticationResult(user=principal, auth=token)
