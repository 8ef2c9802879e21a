"""The admin's pages of a tenant: its API keys and console users, its safety
policy; a platform admin's list of tenants."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from app.auth.guards import CHAT_SCOPE, DOCUMENTS_READ_SCOPE, DOCUMENTS_WRITE_SCOPE, FEEDBACK_SCOPE
from app.chat.safety_gate import SafetyGate
from app.console.accounts import ConsoleAccounts
from app.console.security import console_guard, console_session
from app.console.sessions import ConsoleSession
from conversation import ApiKeyService, CreatedApiKey, TenantService
from kernel.errors import InvalidInputError

__all__ = ["TenantAdminController"]

SCOPES = (CHAT_SCOPE, DOCUMENTS_READ_SCOPE, DOCUMENTS_WRITE_SCOPE, FEEDBACK_SCOPE)
KEY_ROLES = ("user", "labeler", "admin")


class TenantAdminController(Controller):
    path = "/"
    guards = [console_guard("admin")]

    @get("/tenant")
    async def tenant(
        self,
        request: Request[Any, Any, Any],
        tenants: TenantService,
        api_keys: ApiKeyService,
        console_accounts: ConsoleAccounts,
    ) -> Template:
        """The tenant's API keys and console users."""
        return await self._page(request, tenants, api_keys, console_accounts)

    @post("/tenant/keys", status_code=201)
    async def create_key(
        self,
        request: Request[Any, Any, Any],
        tenants: TenantService,
        api_keys: ApiKeyService,
        console_accounts: ConsoleAccounts,
    ) -> Template:
        """A new key; its secret is on this page once and never again."""
        session = console_session(request)
        form = await request.form()
        role = str(form.get("role") or "user")
        if role not in KEY_ROLES:
            raise InvalidInputError(f"A key's role is one of {', '.join(KEY_ROLES)}.")
        scopes = [str(s) for s in form.getall("scope", [])]
        if not scopes and role == "user":
            raise InvalidInputError("A user key needs at least one scope.")
        created = await api_keys.create(
            session.tenant_id, str(form.get("name") or ""), scopes, role=role
        )
        return await self._page(request, tenants, api_keys, console_accounts, created=created)

    @post("/tenant/keys/{key_id:str}/revoke", status_code=303)
    async def revoke_key(
        self, request: Request[Any, Any, Any], api_keys: ApiKeyService, key_id: str
    ) -> Redirect:
        """Revoke a key of the tenant (another tenant's key is a 404)."""
        await api_keys.revoke(console_session(request).tenant_id, key_id)
        return Redirect("/admin/tenant", status_code=303)

    @post("/tenant/users", status_code=303)
    async def create_user(
        self, request: Request[Any, Any, Any], console_accounts: ConsoleAccounts
    ) -> Redirect:
        """A new console user of the tenant (a platform admin's power is not given here)."""
        session = console_session(request)
        form = await request.form()
        role = str(form.get("role") or "labeler")
        await console_accounts.create(
            session.tenant_id,
            str(form.get("username") or "").strip(),
            str(form.get("password") or ""),
            role,  # type: ignore[arg-type]  # checked by create
        )
        return Redirect("/admin/tenant", status_code=303)

    @post("/tenant/users/{user_id:str}/{action:str}", status_code=303)
    async def set_user(
        self,
        request: Request[Any, Any, Any],
        console_accounts: ConsoleAccounts,
        user_id: str,
        action: str,
    ) -> Redirect:
        """Disable a console user (their sessions end at once) or enable them."""
        session = console_session(request)
        if action not in ("disable", "enable"):
            raise InvalidInputError("The action is disable or enable.")
        if user_id == session.user_id:
            raise InvalidInputError("You cannot disable yourself.")
        await console_accounts.set_disabled(session.tenant_id, user_id, action == "disable")
        return Redirect("/admin/tenant", status_code=303)

    @get("/safety")
    async def safety(self, request: Request[Any, Any, Any], safety: SafetyGate | None) -> Template:
        """The tenant's safety policy (set in ``RAGSERVE_SAFETY_POLICY_FILE``)."""
        session = console_session(request)
        own, policy = (False, None) if safety is None else safety.policy(session.tenant_id)
        return Template(
            "console/safety.html",
            context={
                "console": session,
                "section": "safety",
                "enabled": safety is not None,
                "own": own,
                "policy": _policy_rows(asdict(policy)) if policy is not None else [],
            },
        )

    @get("/tenants", guards=[console_guard("platform")])
    async def tenants_page(
        self, request: Request[Any, Any, Any], tenants: TenantService
    ) -> Template:
        """Every tenant (platform admins only)."""
        return Template(
            "console/tenants.html",
            context={
                "console": console_session(request),
                "section": "tenants",
                "tenants": await tenants.list(),
            },
        )

    @post("/tenants", status_code=303, guards=[console_guard("platform")])
    async def create_tenant(
        self, request: Request[Any, Any, Any], tenants: TenantService
    ) -> Redirect:
        """A new tenant (a taken name is a 409)."""
        form = await request.form()
        await tenants.create(str(form.get("name") or "").strip())
        return Redirect("/admin/tenants", status_code=303)

    @staticmethod
    async def _page(
        request: Request[Any, Any, Any],
        tenants: TenantService,
        api_keys: ApiKeyService,
        console_accounts: ConsoleAccounts,
        created: CreatedApiKey | None = None,
    ) -> Template:
        session: ConsoleSession = console_session(request)
        return Template(
            "console/tenant.html",
            context={
                "console": session,
                "section": "tenant",
                "tenant": await tenants.get(session.tenant_id),
                "keys": await api_keys.list(session.tenant_id),
                "users": await console_accounts.list(session.tenant_id),
                "created": created,
                "scopes": SCOPES,
                "roles": KEY_ROLES,
            },
            status_code=201 if created else 200,
        )


def _policy_rows(policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The policy's settings as name and readable value."""
    rows = []
    for name, value in policy.items():
        if isinstance(value, (list, tuple)):
            shown = ", ".join(
                str(v if not isinstance(v, dict) else v.get("name", v)) for v in value
            )
        elif isinstance(value, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in value.items())
        else:
            shown = str(value)
        rows.append((name.replace("_", " "), shown or "—"))
    return rows
