"""The HTTP side of authentication: ``request.user`` is the caller's ``Principal``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.auth.authenticator import Authenticator, bearer_token
from app.core.errors import UnauthorizedError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

    from app.ratelimit import RateLimiter

__all__ = ["AuthMiddleware"]


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to a ``Principal`` for every route but the excluded ones.

    Before authenticating, the client address's bucket is checked (``RateLimiter.
    admit_address``), and a credential that fails is charged to the address's
    failed-authentication budget, so guessing keys is throttled per address.

    NOTE: middlewares get no dependency injection; this one reads the services it
    needs, the ``Authenticator`` and the ``RateLimiter``, from the app state the
    lifespan filled.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        authenticator: Authenticator = connection.app.state.authenticator
        limiter: RateLimiter | None = connection.app.state.get("rate_limiter")
        address = connection.client.host if connection.client else None
        if limiter is not None:
            # Before any lookup: a flood of bad credentials stops here.
            await limiter.admit_address(address)
        token = bearer_token(connection.headers.get("authorization"))
        try:
            principal = await authenticator.authenticate(token)
        except UnauthorizedError:
            if limiter is not None:
                await limiter.on_auth_failure(address)
            raise
        return AuthenticationResult(user=principal, auth=token)
