"""The ``ragserve keys``, ``tenants`` and ``token`` commands: who may call ragserve."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from app.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from retrieval import IngestionQuota


@click.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant name; created when missing.")
@click.option("--name", default="default", show_default=True, help="A label for the key.")
@click.option(
    "--role",
    type=click.Choice(["user", "labeler", "admin"]),
    default="user",
    show_default=True,
    help="What the key may do (admin: manage the tenant's users and keys).",
)
@click.option("--scope", "scopes", multiple=True, help="A scope (repeatable; default: chat).")
@click.option("--rate-limit-burst", type=click.IntRange(min=1), help="The key's own bucket size.")
@click.option(
    "--rate-limit-rate", type=click.FloatRange(min=0, min_open=True), help="Its refill per second."
)
def keys_create(
    tenant: str,
    name: str,
    role: str,
    scopes: tuple[str, ...],
    rate_limit_burst: int | None,
    rate_limit_rate: float | None,
) -> None:
    """Create an API key; the key itself is the last line printed (it is shown only once)."""
    if (rate_limit_burst is None) != (rate_limit_rate is None):
        raise click.UsageError("give both --rate-limit-burst and --rate-limit-rate, or neither")
    secret = asyncio.run(
        create_key(
            get_settings(),
            tenant,
            name,
            role=role,
            scopes=scopes or ("chat",),
            rate_limit=None
            if rate_limit_burst is None or rate_limit_rate is None
            else (rate_limit_burst, rate_limit_rate),
        )
    )
    click.echo(f"{role} API key for tenant {tenant!r} (store it now; it is not shown again):")
    click.echo(secret)


@click.group()
def tenants() -> None:
    """Manage tenants."""


@tenants.command("create")
@click.argument("name")
def tenants_create(name: str) -> None:
    """Create a tenant; its id is the last line printed. A taken name is an error."""
    from conversation import ConflictError, InvalidInputError

    try:
        tenant_id = asyncio.run(_create_tenant(get_settings(), name))
    except (ConflictError, InvalidInputError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"tenant {name!r} created; its id:")
    click.echo(tenant_id)


@tenants.command("quota")
@click.argument("name")
@click.option("--max-bytes", type=click.IntRange(min=0), help="Stored document bytes.")
@click.option("--max-documents", type=click.IntRange(min=0), help="Stored documents.")
def tenants_quota(name: str, max_bytes: int | None, max_documents: int | None) -> None:
    """Set a tenant's ingestion quota (an option left out: the configured default),
    then print the quota and what the tenant stores now."""
    from conversation import NotFoundError

    try:
        quota, documents, stored = asyncio.run(
            _set_quota(get_settings(), name, max_bytes, max_documents)
        )
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"tenant {name!r}: {documents} of {quota.max_documents} documents, "
        f"{stored} of {quota.max_bytes} bytes"
    )


async def _set_quota(
    settings: Settings, name: str, max_bytes: int | None, max_documents: int | None
) -> tuple[IngestionQuota, int, int]:
    from kernel.db import create_engine, session_factory
    from retrieval import IngestionQuota, QuotaStore

    tenant_id = await _tenant_id(settings, name)
    engine = create_engine(settings.database_url)
    try:
        quotas = QuotaStore(session_factory(engine))
        await quotas.set_quota(tenant_id, max_bytes, max_documents)
        default = IngestionQuota(settings.ingestion.quota_bytes, settings.ingestion.quota_documents)
        documents, stored = await quotas.usage(tenant_id)
        return await quotas.quota(tenant_id, default), documents, stored
    finally:
        await engine.dispose()


@click.command()
@click.option("--tenant", required=True, help="Tenant name (it must exist).")
@click.option("--subject", required=True, help="The token's sub.")
@click.option(
    "--role", type=click.Choice(["user", "labeler", "admin"]), default="user", show_default=True
)
@click.option("--scope", "scopes", multiple=True, help="A scope (repeatable).")
@click.option(
    "--ttl", "ttl_s", type=click.IntRange(min=1), default=3600, show_default=True, help="Seconds."
)
def token(tenant: str, subject: str, role: str, scopes: tuple[str, ...], ttl_s: int) -> None:
    """Mint a JWT with RAGSERVE_AUTH_JWT_SECRET (for operators and tests); printed alone."""
    from app.auth.jwt import mint_token
    from conversation import PRINCIPAL_ROLES, NotFoundError

    settings = get_settings()
    if settings.auth.jwt_secret is None:
        raise click.ClickException("minting needs RAGSERVE_AUTH_JWT_SECRET to be set")
    try:
        tenant_id = asyncio.run(_tenant_id(settings, tenant))
    except NotFoundError as exc:
        raise click.ClickException(f"no tenant called {tenant!r}") from exc
    role_name = next(known for known in PRINCIPAL_ROLES if known == role)
    click.echo(
        mint_token(
            settings.auth,
            subject=subject,
            tenant_id=tenant_id,
            role=role_name,
            scopes=scopes,
            ttl_s=ttl_s,
        )
    )


async def create_key(
    settings: Settings,
    tenant: str,
    name: str,
    *,
    role: str = "user",
    scopes: tuple[str, ...] = ("chat",),
    rate_limit: tuple[int, float] | None = None,
) -> str:
    from conversation import ApiKeyService, RateLimit, TenantService
    from kernel.db import create_engine, session_factory

    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        tenant_info = await TenantService(sessions).ensure(tenant)
        created = await ApiKeyService(sessions).create(
            tenant_info.id,
            name=name,
            scopes=scopes,
            role=role,
            rate_limit=None if rate_limit is None else RateLimit(*rate_limit),
        )
        return created.secret
    finally:
        await engine.dispose()


async def _create_tenant(settings: Settings, name: str) -> str:
    from conversation import TenantService
    from kernel.db import create_engine, session_factory

    engine = create_engine(settings.database_url)
    try:
        return (await TenantService(session_factory(engine)).create(name)).id
    finally:
        await engine.dispose()


async def _tenant_id(settings: Settings, name: str) -> str:
    from conversation import TenantService
    from kernel.db import create_engine, session_factory

    engine = create_engine(settings.database_url)
    try:
        return (await TenantService(session_factory(engine)).get_by_name(name)).id
    finally:
        await engine.dispose()
