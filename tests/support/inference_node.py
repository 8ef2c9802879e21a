"""A real ``ragserve inference`` process on a free port: start, stop, SIGKILL, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import free_port, stop_process, wait_until_ready

REPO = Path(__file__).resolve().parents[2]
RAGSERVE = str(Path(sys.executable).parent / "ragserve")


class InferenceNode:
    """One ``ragserve inference`` node serving the packaged model.

    The port stays the same across restarts, so a client keeps its URL.

    Args:
        work_dir: Holds the node's data dir and its log (``node.log``).
        extra_env: ``RAGSERVE_*`` settings on top of the test defaults (float32,
            short answers, the shared model cache).
        api_key: When set, the node requires it as a bearer token on ``/v1``.
    """

    def __init__(
        self, work_dir: Path, extra_env: dict[str, str] | None = None, api_key: str | None = None
    ) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.api_key = api_key
        self.env = {
            **os.environ,
            "RAGSERVE_DATA_DIR": str(work_dir / "data"),
            "RAGSERVE_GENERATION_CACHE_DIR": str(REPO / ".cache" / "models"),
            "RAGSERVE_GENERATION_DTYPE": "float32",
            "RAGSERVE_GENERATION_MAX_TOKENS": "24",
            "RAGSERVE_LOG_LEVEL": "warning",
            **(extra_env or {}),
        }
        self.log_path = work_dir / "node.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def start(self, timeout: float = 240.0) -> None:
        """Start the node and wait until ``/readyz`` says the model is loaded."""
        args = [RAGSERVE, "inference", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.api_key:
            key_file = self.work_dir / "api_key"
            key_file.write_text(self.api_key + "\n")
            args += ["--api-key-file", str(key_file)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_ready(
            self.process,
            f"{self.url}/readyz",
            "ragserve inference",
            self._log_tail,
            timeout,
            interval=0.2,
        )

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), or kill after 30 s."""
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the node dies at once, mid-stream connections and all."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def metric(self, name: str) -> float:
        """The sum of the samples of metric ``name`` on ``/metrics``."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
