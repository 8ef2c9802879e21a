"""Server processes for tests and benchmarks: a free port, waiting until one
answers, stopping one."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(
    process: subprocess.Popen[bytes],
    url: str,
    name: str,
    log_tail: Callable[[], str],
    timeout: float,
    interval: float = 0.5,
) -> None:
    """Poll ``url`` until it answers 200.

    Raises:
        RuntimeError: The process exited, or did not answer within ``timeout``
            seconds (it is stopped then); the message holds its log's tail.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    stop_process(process)
    raise RuntimeError(f"{name} not ready in {timeout}s:\n{log_tail()}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop gracefully (SIGTERM), or kill after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
