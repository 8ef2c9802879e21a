"""What every console request passes: its session, its role, its CSRF token, and
the headers of its answer.

``console_guard`` loads the session the cookie names (signing a disabled user out),
checks the role, and refuses a state-changing request whose CSRF token (the form's
``_csrf`` field, or the ``X-CSRF-Token`` header of the console's own script) is not
the session's. Pages answer with a strict Content-Security-Policy: every script and
style is a file ragserve serves, none is inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

import structlog
from litestar import MediaType, Request, Response
from litestar.response import Redirect, Template

from app.console.sessions import COOKIE, ConsoleSession
from app.core.errors import ApiError, ForbiddenError, classify

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Guard

    from app.console.accounts import ConsoleAccounts
    from app.console.sessions import SessionStore

__all__ = [
    "SECURITY_HEADERS",
    "SignInRequiredError",
    "console_error",
    "console_guard",
    "console_session",
    "secure_headers",
]

log = structlog.get_logger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Headers of every console answer (static files keep their own Cache-Control)."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequiredError(ApiError):
    """No live console session: pages redirect to the sign-in page."""

    status_code, code = 401, "sign_in_required"


class CsrfError(ForbiddenError):
    """A state-changing request without this session's CSRF token."""

    code = "csrf_failed"


def console_session(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession:
    """The session ``console_guard`` put on the request."""
    session = connection.state.get("console")
    if not isinstance(session, ConsoleSession):  # pragma: no cover - guard missing
        raise SignInRequiredError("Sign in to the console.")
    return session


async def _load(request: Request[Any, Any, Any]) -> ConsoleSession | None:
    state = request.app.state
    store = cast("SessionStore", state.console_sessions)
    accounts = cast("ConsoleAccounts", state.console_accounts)
    token = request.cookies.get(COOKIE)
    session = await store.load(token)
    if session is None:
        return None
    user = await accounts.active(session.user_id)
    if user is None or user.role != session.role:
        # Disabled, deleted, or its role changed: the session ends now.
        await store.destroy(token)
        return None
    return session


def console_guard(role: Literal["labeler", "admin", "platform"]) -> Guard:
    """A guard for console pages: a live session holding ``role`` (an admin may do
    what a labeler may; ``platform`` is an admin of every tenant), and the session's
    CSRF token on every state-changing request."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        request = cast("Request[Any, Any, Any]", connection)
        session = await _load(request)
        if session is None:
            raise SignInRequiredError("Sign in to the console.")
        if role == "admin" and not session.is_admin:
            raise ForbiddenError("This page is for admins.")
        if role == "platform" and not (session.is_admin and session.platform_admin):
            raise ForbiddenError("This page is for platform admins.")
        if request.method not in _SAFE_METHODS:
            token = request.headers.get("x-csrf-token")
            if token is None:
                token = (await request.form()).get("_csrf")
            if not session.csrf_ok(token if isinstance(token, str) else None):
                raise CsrfError("The form's security token is missing or stale; reload the page.")
        connection.state.console = session

    guard.__name__ = f"console_{role}"
    return guard


def secure_headers(response: Response[Any]) -> Response[Any]:
    """The console's security headers on an answer (an ``after_request`` hook)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("x-requested-with") == "console" or "application/json" in (
        request.headers.get("accept") or ""
    )


def console_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Console errors as pages (or JSON for the console's own script); no session
    sends a page to the sign-in form, coming back here afterwards."""
    error = classify(exc)
    if error.status_code >= 500:
        log.error("console_error", path=request.url.path, error=repr(exc), exc_info=exc)
    if isinstance(error, SignInRequiredError) and not _wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return secure_headers(Redirect(f"/admin/login?next={quote(target, safe='')}"))
    headers = {} if error.retry_after is None else {"Retry-After": str(int(error.retry_after))}
    if _wants_json(request):
        return secure_headers(
            Response(
                {"error": error.to_payload()},
                status_code=error.status_code,
                media_type=MediaType.JSON,
                headers=headers,
            )
        )
    page = Template(
        "console/error.html",
        context={"status": error.status_code, "message": error.message, "console": None},
        status_code=error.status_code,
        headers=headers,
    )
    return secure_headers(cast("Response[Any]", page))
