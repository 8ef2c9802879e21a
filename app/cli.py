"""The ``ragserve`` command: serve, inference, worker, migrate, ingest, keys, tenants,
token, demo, models."""

from __future__ import annotations

import asyncio
import math
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

from app.auth.commands import create_key, keys, tenants, token
from app.console.commands import demo_console_user, users
from app.core.logs import configure_logging
from app.core.settings import Settings, get_settings
from app.routing.commands import models

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conversation import TenantService
    from retrieval import RetrievalService

_GIL_SWITCH_INTERVAL_S = 0.0002
"""How long a thread holds the GIL while another waits, in ``ragserve serve``."""

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}


@click.group()
def main() -> None:
    """ragserve: a RAG chat backend. Configure with RAGSERVE_* variables (see README)."""


@main.command()
@click.option(
    "--host", default=None, help="Interface to bind (default RAGSERVE_HOST or 127.0.0.1)."
)
@click.option("--port", default=None, type=int, help="Port (default RAGSERVE_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the REST and WebSocket API."""
    import uvicorn

    from app.server.drain import DrainingServer
    from app.server.factory import create_app

    settings = get_settings()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level=settings.server.log_level,
        ws_max_size=settings.server.ws_max_message_bytes * 4,
        # create_app configured logging (JSON, request ids, no secrets); keep it.
        log_config=None,
        # The app logs each request itself, by route template: uvicorn's line has
        # the raw path, query string included.
        access_log=False,
        # NOTE: the drain already waited for the turns (drain_grace_s); this
        # bounds the rest: responses being written and sockets closing.
        timeout_graceful_shutdown=max(math.ceil(settings.server.drain_grace_s), 1),
    )
    # NOTE: the engine's thread needs the GIL back after each torch kernel; under a
    # storm of requests it waits up to a switch interval each time, hundreds of
    # times a decode step. Search storm test, max token gap: 0.24-0.26 s with
    # Python's default 5 ms, 0.21 s with 1 ms; with a CPU hog beside it, 0.19-0.21 s
    # with 1 ms and 0.12-0.16 s with 0.2 ms.
    sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)
    DrainingServer(config, lambda: app.state.get("drain")).run()


@main.command("inference")
@click.option(
    "--host", default=None, help="Interface to bind (default RAGSERVE_HOST or 127.0.0.1)."
)
@click.option("--port", default=8001, show_default=True, type=int, help="Port.")
@click.option(
    "--api-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file whose first line is the key that /v1 requests must send as a bearer token.",
)
def inference_node(host: str | None, port: int, api_key_file: Path | None) -> None:
    """Serve only the generation engine, behind an OpenAI-compatible API (an inference node).

    The engine is the one RAGSERVE_GENERATION_* configures; API nodes reach it with
    RAGSERVE_GENERATION_BACKEND_URLS or the model registry. No database is used.
    """
    import uvicorn

    from app.routing.specs import served_id
    from app.server.components import build_engine
    from inference.node import create_node_app

    settings = get_settings()
    configure_logging(settings.server.log_level)
    api_key = api_key_file.read_text().strip().partition("\n")[0].strip() if api_key_file else None
    if api_key_file and not api_key:
        raise click.UsageError(f"{api_key_file} holds no key")
    engine = build_engine(settings)
    gen = settings.generation
    app = create_node_app(
        engine,
        # The engine learns its model's name when the app's lifespan starts it.
        model_id=lambda: served_id(gen.model_name or engine.model_name),
        api_key=api_key,
        default_max_tokens=gen.max_tokens,
        max_tokens_limit=gen.max_tokens_limit,
    )
    # The engine thread and the loop streaming its tokens share the GIL here too.
    sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port,
        log_level=settings.server.log_level,
        log_config=None,
        access_log=False,
    )


@main.command()
def worker() -> None:
    """Run ingestion workers only, no HTTP server, until SIGTERM or Ctrl-C.

    They take uploads from the ingestion queue (Redis Streams when RAGSERVE_REDIS_URL
    is set), RAGSERVE_INGESTION_WORKERS of them; API nodes may then run none.
    """
    settings = get_settings()
    configure_logging(settings.server.log_level)
    if settings.ingestion.workers < 1:
        raise click.UsageError("RAGSERVE_INGESTION_WORKERS is 0: this worker would do nothing")
    asyncio.run(_work(settings))


async def _work(settings: Settings) -> None:
    import signal

    from app.server.lifespan import open_state

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncExitStack() as stack:
        await open_state(settings, stack, with_engine=False, with_ingest_workers=True)
        click.echo(f"ingestion worker running ({settings.ingestion.workers} workers)", err=True)
        await stop.wait()
    # Leaving the stack stops the workers; an upload taken but not finished stays
    # pending in the queue and is claimed again (at least once).


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    from kernel.migrations import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    click.echo("database is up to date")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", required=True, help="Tenant name; created when missing.")
@click.option(
    "--collection", default="default", show_default=True, help="Collection to ingest into."
)
def ingest(paths: tuple[Path, ...], tenant: str, collection: str) -> None:
    """Ingest files (or folders of .txt, .md, .html and .pdf files) for a tenant."""
    configure_logging(get_settings().server.log_level)
    failed = asyncio.run(_ingest(get_settings(), list(_files(paths)), tenant, collection))
    sys.exit(1 if failed else 0)


main.add_command(models)
main.add_command(keys)
main.add_command(tenants)
main.add_command(token)
main.add_command(users)


@main.command()
@click.option(
    "--docs", "docs_dir", default="docs", show_default=True, type=click.Path(path_type=Path)
)
@click.option("--tenant", default="demo", show_default=True)
def demo(docs_dir: Path, tenant: str) -> None:
    """Set up the demo tenant: ingest the docs folder once; print the console's demo
    admin and a ready API key (the key is the last line)."""
    configure_logging("warning")
    settings = get_settings()
    files = list(_files((docs_dir,))) if docs_dir.exists() else []
    asyncio.run(_ingest(settings, files, tenant, "default"))
    username, password = asyncio.run(demo_console_user(settings, tenant))
    click.echo(f"Console (/admin): tenant {tenant!r}, username {username!r}, password {password}")
    secret = asyncio.run(_demo_key(settings, tenant))
    click.echo(f"API key for tenant {tenant!r}:")
    click.echo(secret)


def _files(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            )
        else:
            yield path


async def _ingest(settings: Settings, files: list[Path], tenant: str, collection: str) -> int:
    from app.server.lifespan import open_state

    failed = chunks = 0
    async with AsyncExitStack() as stack:
        # NOTE: the CLI indexes inline (the same Indexer the queue's workers run) and
        # starts no workers: it must not take jobs from a shared queue and exit mid-way.
        state = await open_state(settings, stack, with_engine=False, with_ingest_workers=False)
        tenants: TenantService = state.tenants
        retrieval: RetrievalService = state.retrieval
        tenant_info = await tenants.ensure(tenant)
        counts: dict[str, int] = {}
        progress = tqdm(files, desc=f"ingesting into {tenant}/{collection}", unit="file")
        for path in progress:
            try:
                result = await retrieval.ingest(
                    tenant_info.id, path.name, path.read_bytes(), collection=collection
                )
            except Exception as exc:
                failed += 1
                tqdm.write(f"failed: {path}: {exc}")
                continue
            chunks += result.document.chunk_count
            progress.set_postfix(chunks=chunks)
            counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing"
        click.echo(
            f"ingested {len(files) - failed} file(s), {chunks} chunks: {summary}; {failed} failed"
        )
    return failed


async def _demo_key(settings: Settings, tenant: str) -> str:
    """The demo key kept in the data dir, or a new one when it is missing or revoked."""
    from conversation import ApiKeyService
    from conversation.errors import AuthenticationError
    from kernel.db import create_engine, session_factory

    key_file = settings.data_dir / "demo_api_key"
    if key_file.exists():
        engine = create_engine(settings.database_url)
        try:
            await ApiKeyService(session_factory(engine)).authenticate(key_file.read_text().strip())
            return key_file.read_text().strip()
        except AuthenticationError:
            pass
        finally:
            await engine.dispose()
    # NOTE: the README's first steps upload a document with this key.
    secret = await create_key(settings, tenant, "demo", scopes=("chat", "documents:write"))
    key_file.write_text(secret + "\n")
    key_file.chmod(0o600)
    return secret
