"""The ``ragserve users`` commands: the people who sign in to the web console."""

from __future__ import annotations

import asyncio
import sys

import click

from app.core.settings import Settings, get_settings
from kernel.errors import ConflictError, InvalidInputError


@click.group()
def users() -> None:
    """Manage console users (sign-in to /admin)."""


@users.command("create")
@click.option("--tenant", required=True, help="Tenant name; created when missing.")
@click.option("--username", required=True, help="The name to sign in with.")
@click.option("--role", type=click.Choice(["labeler", "admin"]), required=True)
@click.option(
    "--platform-admin",
    is_flag=True,
    help="An admin who also manages every tenant and the shared model registry.",
)
def users_create(tenant: str, username: str, role: str, platform_admin: bool) -> None:
    """Create a console user; the password is read from standard input (one line).

    On a terminal it is asked for twice without echo; piped, the first line is it.
    """
    if platform_admin and role != "admin":
        raise click.UsageError("--platform-admin needs --role admin")
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        asyncio.run(_create(get_settings(), tenant, username, password, role, platform_admin))
    except (InvalidInputError, ConflictError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"console {role} {username!r} of tenant {tenant!r} created")


async def _create(
    settings: Settings, tenant: str, username: str, password: str, role: str, platform: bool
) -> None:
    from app.console.accounts import ConsoleAccounts
    from conversation import TenantService
    from kernel.db import create_engine, session_factory

    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        tenant_id = (await TenantService(sessions).ensure(tenant)).id
        await ConsoleAccounts(sessions).create(
            tenant_id,
            username,
            password,
            role,  # type: ignore[arg-type]  # click.Choice keeps it one of the roles
            platform_admin=platform,
        )
    finally:
        await engine.dispose()


async def demo_console_user(settings: Settings, tenant: str) -> tuple[str, str]:
    """The demo's console admin (``admin``, a platform admin, for every page) and its
    password, kept in the data dir like the demo API key; made when missing."""
    import secrets

    password_file = settings.data_dir / "demo_console_password"
    if password_file.exists():
        return "admin", password_file.read_text().strip()
    password = secrets.token_urlsafe(12)
    try:
        await _create(settings, tenant, "admin", password, "admin", True)
    except ConflictError:
        # Made by hand earlier: its password is the operator's, not ours to print.
        return "admin", "(set by whoever created it)"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return "admin", password
