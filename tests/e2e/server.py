"""A real ``ragserve serve`` process for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

REPO = Path(__file__).resolve().parents[2]
RAGSERVE = str(Path(sys.executable).parent / "ragserve")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    def cli(self, *args: str) -> str:
        """Run a ``ragserve`` subcommand against the same data dir; its stdout."""
        done = subprocess.run(
            [RAGSERVE, *args],
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ragserve serve exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"ragserve serve not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
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
