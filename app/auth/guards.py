"""Route guards: roles and scopes, checked after authentication, answered with 403.

Roles are ranked: a labeler may do all a user may, an admin all a labeler may.
A guard never reveals another tenant's objects; tenant scoping stays with the
handlers (another tenant's object is a 404, not a 403).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.auth.principal import Principal, Role
from app.core.errors import ForbiddenError, UnauthorizedError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Guard

    from app.auth.settings import AuthSettings

ROLE_RANK: dict[Role, int] = {"user": 0, "labeler": 1, "admin": 2}


def has_role(principal: Principal, role: Role) -> bool:
    """Whether ``principal`` holds ``role`` or a higher one."""
    return ROLE_RANK[principal.role] >= ROLE_RANK[role]


def is_platform_admin(principal: Principal, settings: AuthSettings) -> bool:
    """Whether ``principal`` may see and manage every tenant: an admin with the platform scope."""
    return principal.role == "admin" and settings.platform_admin_scope in principal.scopes


def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise UnauthorizedError("Authentication is required.")
    return user


def require_role(role: Role) -> Guard:
    """A guard letting through callers holding ``role`` or a higher one."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = _principal(connection)
        if not has_role(principal, role):
            raise ForbiddenError(
                f"This endpoint needs the {role} role; the caller's role is {principal.role}."
            )

    guard.__name__ = f"require_{role}"
    return guard


def require_scope(scope: str) -> Guard:
    """A guard letting through callers whose scopes include ``scope``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if scope not in _principal(connection).scopes:
            raise ForbiddenError(f"This endpoint needs the {scope!r} scope.")

    guard.__name__ = f"require_scope_{scope}"
    return guard


def platform_admin_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """For what every tenant shares (the model registry): platform admins only."""
    principal = _principal(connection)
    if not is_platform_admin(principal, connection.app.state.settings.auth):
        raise ForbiddenError(
            "This endpoint changes what every tenant shares: it needs a platform admin."
        )


labeler_guard = require_role("labeler")
"""For the labeling endpoints: labelers and admins."""
admin_guard = require_role("admin")
"""For ``/v1/admin``: admins only."""
