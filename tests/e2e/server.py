"""A real ``ragserve serve`` process for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.processes import free_port, stop_process, wait_until_ready

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

REPO = Path(__file__).resolve().parents[2]
RAGSERVE = str(Path(sys.executable).parent / "ragserve")


class Server:
    """Starts, stops and restarts ``ragserve serve`` on a free port over one data dir."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "RAGSERVE_DATA_DIR": str(data_dir),
            "RAGSERVE_GENERATION_CACHE_DIR": str(REPO / ".cache" / "models"),
            "RAGSERVE_GENERATION_MAX_TOKENS": "40",
            "RAGSERVE_WS_INIT_TIMEOUT_S": "2",
            "RAGSERVE_MAX_BODY_BYTES": str(2 * 1024 * 1024),
            "RAGSERVE_LOG_LEVEL": "warning",
            # The tests read /metrics and the /readyz detail without the ops token.
            "RAGSERVE_AUTH_OPS_PUBLIC": "true",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run a ``ragserve`` subcommand against the same data dir; its stdout."""
        done = subprocess.run(
            [RAGSERVE, *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"ragserve {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout

    def create_key(self, tenant: str, scopes: tuple[str, ...] = ("chat", "documents:write")) -> str:
        """A user key of ``tenant``; by default it may chat and upload documents."""
        flags = [arg for scope in scopes for arg in ("--scope", scope)]
        return self.cli("keys", "create", "--tenant", tenant, *flags).strip().splitlines()[-1]

    def start(self, timeout: float = 240.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [RAGSERVE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until_ready(
            self.process,
            f"{self.url}/readyz",
            "ragserve serve",
            lambda: self.log_path.read_text()[-4000:],
            timeout,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def shared_nodes(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    extra_env: dict[str, str] | None = None,
    count: int = 2,
) -> Iterator[list[Server]]:
    """``count`` started ``ragserve serve`` processes sharing one PostgreSQL database
    and one Redis (under a key prefix of their own), each with its own data dir."""
    # A module-wide prefix: the redis_prefix fixture is per test.
    prefix = f"ragserve-test:{tmp_path_factory.mktemp('prefix').name}:"
    env = {
        "RAGSERVE_DATABASE_URL": postgres_url,
        "RAGSERVE_REDIS_URL": redis_url,
        "RAGSERVE_REDIS_KEY_PREFIX": prefix,
        **(extra_env or {}),
    }
    nodes = [Server(Path(tmp_path_factory.mktemp(f"node{i}")), env) for i in range(count)]
    nodes[0].cli("migrate")
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
