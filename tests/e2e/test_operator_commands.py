"""The operator's commands as real processes: ``ragserve models ...`` on the registry
and ``ragserve worker``'s start and clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from tests.e2e.server import RAGSERVE, Server

if TYPE_CHECKING:
    from pathlib import Path


def _run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAGSERVE, *args], env=server.env, capture_output=True, text=True, timeout=120, check=False
    )


def _model(stdout: str) -> dict[str, object]:
    return dict(json.loads(stdout))


def test_models_commands_roll_a_version_out_and_back_and_refuse_bad_input(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path)
    server.cli("migrate")
    server.cli("models", "create", "qwen", "--description", "Qwen on vLLM")
    added = _model(
        server.cli(
            "models", "add-version", "qwen", "v1",
            "--endpoint", "http://10.0.0.1:8000", "--endpoint", "http://10.0.0.2:8000=2",
            "--upstream-model", "Qwen/Qwen2.5-7B-Instruct", "--price-prompt", "0.15",
        )
    )  # fmt: skip
    assert added["rollout"] == {
        "stable": "v1", "canary": None, "canary_percent": 0.0, "tenant_pins": {}, "shadows": [],
    }  # fmt: skip
    server.cli("models", "add-version", "qwen", "v2", "--endpoint", "http://10.0.0.3:8000")
    split = _model(server.cli("models", "split", "qwen", "--canary", "v2", "--percent", "5"))
    assert split["rollout"]["canary"] == "v2"  # type: ignore[index]
    promoted = _model(server.cli("models", "promote", "qwen"))
    assert promoted["rollout"]["stable"] == "v2"  # type: ignore[index]
    rolled_back = _model(server.cli("models", "rollback", "qwen"))
    assert rolled_back["rollout"]["stable"] == "v1"  # type: ignore[index]

    refused = [
        ("models", "split", "qwen", "--canary", "v9", "--percent", "5"),
        ("models", "add-version", "qwen", "v3"),  # a remote version needs an endpoint
        ("models", "add-version", "qwen", "v3", "--endpoint", "http://x=heavy"),
        ("models", "promote", "qwen"),  # no canary
        ("models", "create", "qwen"),  # taken
    ]
    for args in refused:
        done = _run(server, *args)
        assert done.returncode != 0, args
        assert "Error" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
    listed = _run(server, "models", "list")
    assert '"stable": "v1"' in listed.stdout, "refused commands changed nothing"


def test_the_worker_runs_until_sigterm_and_refuses_zero_workers(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.cli("migrate")
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [RAGSERVE, "worker"], env=server.env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while b"ingestion worker running" not in (tmp_path / "worker.log").read_bytes():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    idle = subprocess.run(
        [RAGSERVE, "worker"],
        env={**os.environ, **server.env, "RAGSERVE_INGESTION_WORKERS": "0"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert idle.returncode == 2
    assert "RAGSERVE_INGESTION_WORKERS" in idle.stderr
