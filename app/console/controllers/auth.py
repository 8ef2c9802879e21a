"""Console sign-in and sign-out.

The sign-in form carries a token also set in a short-lived ``SameSite=Strict``
cookie (double submit): another site cannot sign a browser in to an account of
its choosing. Attempts are rate-limited per account and per address before a
password is checked (``login_throttle.py``).
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.params import Parameter
from litestar.response import Redirect, Template

from app.console.accounts import ConsoleAccounts
from app.console.login_throttle import LoginThrottle
from app.console.security import console_guard, console_session
from app.console.sessions import COOKIE, SessionStore
from app.core.errors import ResourceNotFoundError
from app.core.settings import Settings
from conversation import TenantService
from kernel.errors import NotFoundError

__all__ = ["ConsoleAuthController"]

LOGIN_COOKIE = "ragserve_console_login"
_LOGIN_COOKIE_S = 3600


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a console path of this site, never another site."""
    if not target or not (target == "/admin" or target.startswith(("/admin/", "/admin?"))):
        return "/admin/queue"
    if "/.." in target or any(c in target for c in "\\\r\n"):
        return "/admin/queue"
    return target


def _secure(request: Request[Any, Any, Any], settings: Settings) -> bool:
    configured = settings.console.secure_cookies
    return request.url.scheme == "https" if configured is None else configured


def _login_page(
    csrf: str, next_: str, *, error: str | None = None, tenant: str = "", username: str = ""
) -> dict[str, Any]:
    return {
        "console": None,
        "csrf": csrf,
        "next": next_,
        "error": error,
        "tenant": tenant,
        "username": username,
    }


class ConsoleAuthController(Controller):
    path = "/"

    @get("/login")
    async def login_form(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        next_: str | None = Parameter(query="next", default=None, max_length=2000),
    ) -> Template:
        """The sign-in form, with a fresh double-submit token."""
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        return Template(
            "console/login.html",
            context=_login_page(token, safe_next(next_)),
            cookies=[self._login_cookie(token, request, settings)],
        )

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        tenants: TenantService,
        console_accounts: ConsoleAccounts,
        console_sessions: SessionStore,
        login_throttle: LoginThrottle,
    ) -> Template | Redirect:
        """Check the password; on success a new session cookie and the page asked for."""
        form = await request.form()
        fields = {k: str(form.get(k) or "") for k in ("_csrf", "next", "tenant", "username")}
        password = str(form.get("password") or "")
        expected = request.cookies.get(LOGIN_COOKIE)
        next_ = safe_next(fields["next"])
        token = expected or secrets.token_urlsafe(24)
        if not expected or not secrets.compare_digest(expected, fields["_csrf"]):
            return self._refused(
                request, settings, token, next_, "The form expired; please sign in again.", 403
            )
        account = f"{fields['tenant']}/{fields['username']}"[:200]
        address = request.client.host if request.client else None
        await login_throttle.admit(account, address)
        user = None
        if fields["tenant"] and fields["username"] and password:
            try:
                tenant = await tenants.get_by_name(fields["tenant"])
            except NotFoundError:
                tenant = None
            # NOTE: an unknown tenant still takes a password check's time (a dummy
            # hash), so the answer's timing does not tell which tenants exist.
            user = await console_accounts.authenticate(
                tenant.id if tenant else "", fields["username"], password
            )
        if user is None:
            await login_throttle.failed(account)
            return self._refused(
                request,
                settings,
                token,
                next_,
                "Unknown tenant, username or password.",
                401,
                tenant=fields["tenant"],
                username=fields["username"],
            )
        # A new session on every sign-in: a cookie planted before it is worth nothing.
        await console_sessions.destroy(request.cookies.get(COOKIE))
        cookie_value, _ = await console_sessions.create(user)
        return Redirect(
            next_,
            status_code=303,
            cookies=[
                Cookie(
                    key=COOKIE,
                    value=cookie_value,
                    path="/admin",
                    httponly=True,
                    secure=_secure(request, settings),
                    samesite="lax",
                ),
                Cookie(key=LOGIN_COOKIE, value="", path="/admin/login", max_age=0, expires=0),
            ],
        )

    @post("/logout", status_code=303, guards=[console_guard("labeler")])
    async def logout(
        self, request: Request[Any, Any, Any], console_sessions: SessionStore
    ) -> Redirect:
        """End the session everywhere: its cookie is refused from now on."""
        console_session(request)
        await console_sessions.destroy(request.cookies.get(COOKIE))
        return Redirect(
            "/admin/login",
            status_code=303,
            cookies=[Cookie(key=COOKIE, value="", path="/admin", max_age=0, expires=0)],
        )

    @get("/{rest:path}", name="console_not_found")
    async def not_found(self, rest: str) -> None:
        """Any other console path: the console's 404 page (with its headers)."""
        raise ResourceNotFoundError(f"There is no console page {'/admin' + rest!r}.")

    @staticmethod
    def _login_cookie(token: str, request: Request[Any, Any, Any], settings: Settings) -> Cookie:
        return Cookie(
            key=LOGIN_COOKIE,
            value=token,
            path="/admin/login",
            max_age=_LOGIN_COOKIE_S,
            httponly=True,
            secure=_secure(request, settings),
            samesite="strict",
        )

    def _refused(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        token: str,
        next_: str,
        error: str,
        status: int,
        **fields: str,
    ) -> Template:
        return Template(
            "console/login.html",
            context=_login_page(token, next_, error=error, **fields),
            status_code=status,
            cookies=[self._login_cookie(token, request, settings)],
        )
