"""Authentication: ``Authorization: Bearer <API key or JWT>`` resolves to a ``Principal``.

API keys start with ``rsk_``; anything else is taken for a JWT, which is refused
unless a JWT key is configured (``RAGSERVE_AUTH_JWT_SECRET`` or ``_PUBLIC_KEY_FILE``).
See docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.auth.jwt import JwtVerifier
from app.auth.principal import Principal, RateLimitOverride
from app.core.errors import UnauthorizedError
from conversation import ApiKeyService, NotFoundError, UserService
from conversation.api_keys import SECRET_PREFIX
from conversation.errors import AuthenticationError

if TYPE_CHECKING:
    from app.auth.settings import AuthSettings


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; raises ``UnauthorizedError``."""
    if not header:
        raise UnauthorizedError(
            "Missing Authorization header; send 'Authorization: Bearer <API key or JWT>'."
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("The Authorization header must be 'Bearer <API key or JWT>'.")
    return token.strip()


class Authenticator:
    """Turns a bearer token (an API key or a JWT) into a ``Principal``.

    A JWT's ``sub`` must be a stored user unless ``jwt_require_user`` is off. When it
    is one, the stored row wins: a disabled user is refused and the stored role
    replaces the token's, so an admin can demote or lock out a person without
    waiting for their tokens to expire.

    Platform admin (every tenant) comes only from what the deployment stores or
    configures: an admin API key holding ``platform_admin_scope``, or an admin
    token whose ``sub`` is in ``platform_admin_subjects``. A token's own scope
    claim cannot grant it; the scope is dropped from a token's scopes.
    """

    def __init__(self, settings: AuthSettings, api_keys: ApiKeyService, users: UserService) -> None:
        self._settings = settings
        self._api_keys = api_keys
        self._users = users
        self._jwt = JwtVerifier(settings) if settings.jwt_enabled else None

    async def authenticate(self, token: str) -> Principal:
        """The principal of ``token``.

        Raises:
            UnauthorizedError: An unknown, revoked, expired or otherwise invalid
                credential, or one whose tenant or user is gone or disabled.
        """
        if token.startswith(SECRET_PREFIX):
            return await self._api_key(token)
        if self._jwt is None:
            raise UnauthorizedError("Invalid or revoked API key.")
        claims = self._jwt.verify(token)
        try:
            user = await self._users.lookup(claims.tenant_id, claims.subject)
        except NotFoundError as exc:
            raise UnauthorizedError("The token's tenant does not exist.") from exc
        if user is None and self._settings.jwt_require_user:
            raise UnauthorizedError("The token's subject is not a user of its tenant.")
        if user is not None and user.disabled:
            raise UnauthorizedError("This user is disabled.")
        settings = self._settings
        role = claims.role if user is None else user.role
        scopes = settings.jwt_default_scopes if claims.scopes is None else claims.scopes
        return Principal(
            tenant_id=claims.tenant_id,
            subject=f"user:{claims.subject}",
            role=role,
            scopes=tuple(s for s in scopes if s != settings.platform_admin_scope),
            platform_admin=role == "admin" and claims.subject in settings.platform_admin_subjects,
            expires_at=claims.expires_at,
        )

    async def _api_key(self, token: str) -> Principal:
        try:
            key = await self._api_keys.authenticate(token)
        except AuthenticationError as exc:
            raise UnauthorizedError("Invalid or revoked API key.") from exc
        override = None
        if key.rate_limit is not None:
            override = RateLimitOverride(
                burst=key.rate_limit.burst, rate_per_s=key.rate_limit.rate_per_s
            )
        return Principal(
            tenant_id=key.tenant_id,
            subject=f"key:{key.id}",
            role=key.role,
            scopes=tuple(key.scopes),
            key_id=key.id,
            rate_limit=override,
            platform_admin=key.role == "admin"
            and self._settings.platform_admin_scope in key.scopes,
        )
