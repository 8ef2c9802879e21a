"""The HTTP side of authentication: ``request.user`` is the caller's ``Principal``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.auth.authenticator import Authenticator, bearer_token

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

__all__ = ["AuthMiddleware"]


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to a ``Principal`` for every route but the excluded ones.

    NOTE: middlewares get no dependency injection; this one reads the one service it
    needs, the ``Authenticator``, from the app state the lifespan filled.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        authenticator: Authenticator = connection.app.state.authenticator
        token = bearer_token(connection.headers.get("authorization"))
        principal = await authenticator.authenticate(token)
        return AuthenticationResult(user=principal, auth=token)
