"""REST: ``/v1/admin``, where admins manage tenants, users and API keys.

Every route needs the admin role (403 otherwise). Users and keys live under their
tenant's path; an admin reaches only its own tenant, and another tenant's id is a
404 like a missing one. A platform admin (an admin API key holding the configured
``platform_admin_scope``, or an admin token whose subject is in
``RAGSERVE_AUTH_PLATFORM_ADMIN_SUBJECTS``) reaches every tenant and alone may
create tenants.
"""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from app.auth.guards import admin_guard, is_platform_admin
from app.auth.principal import Principal
from app.core.errors import ForbiddenError, ResourceNotFoundError
from app.core.settings import Settings
from app.entrypoints.rest.admin.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    TenantCreate,
    TenantList,
    TenantOut,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from conversation import ApiKeyService, TenantInfo, TenantService, UserService


async def provide_tenant(
    tenants: TenantService, principal: Principal, tenant_id: str
) -> TenantInfo:
    """The path's tenant, when the caller may manage it; another tenant is a 404,
    exactly like a missing one."""
    if tenant_id != principal.tenant_id and not is_platform_admin(principal):
        raise ResourceNotFoundError("tenant not found")
    return await tenants.get(tenant_id)


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_guard]
    dependencies = {"tenant": Provide(provide_tenant)}

    @get("/tenants")
    async def list_tenants(self, tenants: TenantService, principal: Principal) -> TenantList:
        """The tenants the caller manages: its own, or every one for a platform admin."""
        if is_platform_admin(principal):
            found = await tenants.list()
        else:
            found = [await tenants.get(principal.tenant_id)]
        return TenantList(items=[TenantOut.of(tenant) for tenant in found])

    @post("/tenants", status_code=HTTP_201_CREATED)
    async def create_tenant(
        self, tenants: TenantService, settings: Settings, principal: Principal, data: TenantCreate
    ) -> TenantOut:
        """Create a tenant (platform admins only; a taken name is a 409)."""
        if not is_platform_admin(principal):
            raise ForbiddenError(
                "Only a platform admin may create tenants (an admin key holding "
                f"the {settings.auth.platform_admin_scope!r} scope, or an allow-listed subject)."
            )
        return TenantOut.of(await tenants.create(data.name))

    @get("/tenants/{tenant_id:str}")
    async def get_tenant(self, tenant: TenantInfo) -> TenantOut:
        """One tenant the caller manages."""
        return TenantOut.of(tenant)

    @get("/tenants/{tenant_id:str}/users")
    async def list_users(
        self,
        users: UserService,
        tenant: TenantInfo,
    ) -> UserList:
        """The tenant's users, disabled ones included, oldest first."""
        return UserList(items=[UserOut.of(user) for user in await users.list(tenant.id)])

    @post("/tenants/{tenant_id:str}/users", status_code=HTTP_201_CREATED)
    async def create_user(
        self,
        users: UserService,
        tenant: TenantInfo,
        data: UserCreate,
    ) -> UserOut:
        """Record a user (by their JWT ``sub``) with a role; a taken subject is a 409."""
        user = await users.create(tenant.id, data.subject, data.role, data.name)
        return UserOut.of(user)

    @get("/tenants/{tenant_id:str}/users/{user_id:str}")
    async def get_user(
        self,
        users: UserService,
        tenant: TenantInfo,
        user_id: str,
    ) -> UserOut:
        """One of the tenant's users."""
        return UserOut.of(await users.get(tenant.id, user_id))

    @patch("/tenants/{tenant_id:str}/users/{user_id:str}")
    async def update_user(
        self,
        users: UserService,
        tenant: TenantInfo,
        user_id: str,
        data: UserUpdate,
    ) -> UserOut:
        """Change a user's role or name, or disable (``disabled: true``) or re-enable them."""
        user = await users.update(
            tenant.id, user_id, role=data.role, name=data.name, disabled=data.disabled
        )
        return UserOut.of(user)

    @get("/tenants/{tenant_id:str}/keys")
    async def list_keys(
        self,
        api_keys: ApiKeyService,
        tenant: TenantInfo,
    ) -> ApiKeyList:
        """The tenant's API keys (prefixes, never secrets), revoked ones included."""
        keys = await api_keys.list(tenant.id)
        return ApiKeyList(items=[ApiKeyOut.of(key) for key in keys])

    @post("/tenants/{tenant_id:str}/keys", status_code=HTTP_201_CREATED)
    async def create_key(
        self,
        api_keys: ApiKeyService,
        settings: Settings,
        principal: Principal,
        tenant: TenantInfo,
        data: ApiKeyCreate,
    ) -> ApiKeyCreated:
        """Create a key with a role, scopes and an optional rate limit; the secret is
        in this answer only."""
        platform_scope = settings.auth.platform_admin_scope
        if platform_scope in data.scopes and not is_platform_admin(principal):
            raise ForbiddenError(f"Only a platform admin may grant the {platform_scope!r} scope.")
        created = await api_keys.create(
            tenant.id,
            name=data.name,
            scopes=data.scopes,
            role=data.role,
            rate_limit=None if data.rate_limit is None else data.rate_limit.to_rate_limit(),
        )
        return ApiKeyCreated.of(created)

    @get("/tenants/{tenant_id:str}/keys/{key_id:str}")
    async def get_key(
        self,
        api_keys: ApiKeyService,
        tenant: TenantInfo,
        key_id: str,
    ) -> ApiKeyOut:
        """One of the tenant's keys."""
        return ApiKeyOut.of(await api_keys.get(tenant.id, key_id))

    @delete("/tenants/{tenant_id:str}/keys/{key_id:str}", status_code=HTTP_200_OK)
    async def revoke_key(
        self,
        api_keys: ApiKeyService,
        tenant: TenantInfo,
        key_id: str,
    ) -> ApiKeyOut:
        """Revoke a key at once (it stays listed, marked revoked); revoking twice is a no-op."""
        return ApiKeyOut.of(await api_keys.revoke(tenant.id, key_id))
