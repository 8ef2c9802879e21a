"""The admin's pages of a tenant: its API keys and console users, its safety
policy (its own, stored and applied by every node, or the policy file's); a
platform admin's list of tenants."""

from __future__ import annotations

import json
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
from safety import InvalidPolicyError

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
        """The tenant's safety policy as the servers run it, editable."""
        saved = request.query_params.get("saved") == "1"
        return self._safety_page(
            console_session(request), safety, flash="Policy saved." if saved else None
        )

    @post("/safety", status_code=303)
    async def set_safety(
        self, request: Request[Any, Any, Any], safety: SafetyGate | None
    ) -> Template | Redirect:
        """Store the tenant's own policy (a bad one is shown again with its error)."""
        session = console_session(request)
        if safety is None:
            raise InvalidInputError("Safety filters are switched off on this deployment.")
        document = str((await request.form()).get("policy") or "")
        try:
            await safety.set_policy(session.tenant_id, document, f"console:{session.username}")
        except InvalidPolicyError as exc:
            return self._safety_page(session, safety, draft=document, error=str(exc))
        return Redirect("/admin/safety?saved=1", status_code=303)

    @post("/safety/reset", status_code=303)
    async def reset_safety(
        self, request: Request[Any, Any, Any], safety: SafetyGate | None
    ) -> Redirect:
        """Drop the tenant's own policy: the policy file's applies again."""
        if safety is not None:
            await safety.reset_policy(console_session(request).tenant_id)
        return Redirect("/admin/safety", status_code=303)

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
    def _safety_page(
        session: ConsoleSession,
        safety: SafetyGate | None,
        *,
        draft: str | None = None,
        error: str | None = None,
        flash: str | None = None,
    ) -> Template:
        source, policy = ("default", None) if safety is None else safety.policy(session.tenant_id)
        current = json.dumps(policy.to_mapping(), indent=2) if policy is not None else ""
        return Template(
            "console/safety.html",
            context={
                "console": session,
                "section": "safety",
                "enabled": safety is not None,
                "source": source,
                "policy": current if draft is None else draft,
                "error": error,
                "flash": flash,
            },
            status_code=422 if error else 200,
        )

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
