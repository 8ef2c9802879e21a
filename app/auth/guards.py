"""Route guards: roles and scopes, checked after authentication, answered with 403.

Roles are ranked: a labeler may do all a user may, an admin all a labeler may.
Scopes narrow what a credential may do, route by route (docs/security.md has the
table): ``chat`` for conversations, chat turns, feedback and the OpenAI routes;
reading documents and searching take ``documents:read`` or ``chat`` (a chat answer
quotes the documents anyway); uploading and deleting take ``documents:write`` or
the admin role. A guard never reveals another tenant's objects; tenant scoping
stays with the handlers (another tenant's object is a 404, not a 403).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.auth.principal import Principal, Role
from app.core.errors import ForbiddenError, UnauthorizedError

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Guard

ROLE_RANK: dict[Role, int] = {"user": 0, "labeler": 1, "admin": 2}


def has_role(principal: Principal, role: Role) -> bool:
    """Whether ``principal`` holds ``role`` or a higher one."""
    return ROLE_RANK[principal.role] >= ROLE_RANK[role]


CHAT_SCOPE = "chat"
"""Conversations, chat turns (REST, WebSocket, OpenAI), feedback, models, embeddings."""
DOCUMENTS_READ_SCOPE = "documents:read"
"""Listing and reading documents, and searching them (``chat`` also does)."""
DOCUMENTS_WRITE_SCOPE = "documents:write"
"""Uploading and deleting documents (the admin role also does)."""
FEEDBACK_SCOPE = "feedback"
"""Rating answers (``chat`` also does)."""


def is_platform_admin(principal: Principal) -> bool:
    """Whether ``principal`` may see and manage every tenant (set by the authenticator)."""
    return principal.platform_admin


def allows(principal: Principal, scopes: tuple[str, ...], role: Role | None = None) -> bool:
    """Whether ``principal`` holds one of ``scopes``, or ``role`` (or a higher one)."""
    if role is not None and has_role(principal, role):
        return True
    return any(scope in principal.scopes for scope in scopes)


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


def require_scope(*scopes: str, role: Role | None = None) -> Guard:
    """A guard letting through callers holding one of ``scopes``, or ``role`` when given."""
    wanted = " or ".join(repr(scope) for scope in scopes)
    if role is not None:
        wanted += f" scope, or the {role} role"
    else:
        wanted += " scope"

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not allows(_principal(connection), scopes, role):
            raise ForbiddenError(f"This endpoint needs the {wanted}.")

    guard.__name__ = f"require_scope_{'_'.join(scopes)}"
    return guard


def platform_admin_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """For what every tenant shares (the model registry): platform admins only."""
    if not is_platform_admin(_principal(connection)):
        raise ForbiddenError(
            "This endpoint changes what every tenant shares: it needs a platform admin."
        )


labeler_guard = require_role("labeler")
"""For the labeling endpoints: labelers and admins."""
admin_guard = require_role("admin")
"""For ``/v1/admin``: admins only."""
chat_guard = require_scope(CHAT_SCOPE)
"""Conversations, chat turns and the OpenAI-compatible routes."""
documents_read_guard = require_scope(DOCUMENTS_READ_SCOPE, CHAT_SCOPE)
"""Listing, reading and searching the tenant's documents."""
documents_write_guard = require_scope(DOCUMENTS_WRITE_SCOPE, role="admin")
"""Uploading and deleting the tenant's documents."""
feedback_guard = require_scope(FEEDBACK_SCOPE, CHAT_SCOPE)
"""Rating answers."""
