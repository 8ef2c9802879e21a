"""deploy/Dockerfile.*, read as text (no Docker here): what they run and copy.

Each image must run a real ``ragserve`` subcommand as a non-root user, check its
health on the port it serves, copy only files that exist and that .dockerignore
lets through, and install torch from the CPU index unless told otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.unit.deploy.checks import command_problems, env_problems

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = {"api": ("serve", 8000), "inference": ("inference", 8001)}
# Names the images set for Python, pip and the Hugging Face libraries.
OTHER_ENV = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "HF_HUB_OFFLINE",
    "HOME",
}

Instruction = tuple[str, str]


def instructions(path: Path) -> list[Instruction]:
    """(``INSTRUCTION``, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(arguments.split())))
    return result


def build_args(steps: list[Instruction], overrides: dict[str, str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, arguments in steps:
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = overrides.get(name, default)
    return args


def image_env(steps: list[Instruction], args: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in steps:
        if keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", arguments):
                env[name] = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)
    return env


@pytest.mark.parametrize("node", DOCKERFILES)
def test_each_image_runs_a_ragserve_node_as_a_user_and_checks_its_port(node: str) -> None:
    subcommand, port = DOCKERFILES[node]
    steps = instructions(REPO / "deploy" / f"Dockerfile.{node}")
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in steps:
        by_keyword.setdefault(keyword, []).append(arguments)
    [base] = by_keyword["FROM"]
    assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim-\w+", base), base
    [cmd] = by_keyword["CMD"]
    argv = json.loads(cmd)
    assert argv[:2] == ["ragserve", subcommand]
    assert command_problems(argv) == []
    assert argv[argv.index("--port") + 1] == str(port)
    assert by_keyword["EXPOSE"] == [str(port)]
    assert by_keyword["USER"][-1] not in {"root", "0"}
    [healthcheck] = by_keyword["HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/readyz" in healthcheck
    assert "urllib.request" in healthcheck  # slim images have no curl


@pytest.mark.parametrize("node", DOCKERFILES)
def test_torch_comes_first_from_the_cpu_index(node: str) -> None:
    runs = [a for k, a in instructions(REPO / "deploy" / f"Dockerfile.{node}") if k == "RUN"]
    torch = next(i for i, run in enumerate(runs) if '"torch==${TORCH_VERSION}"' in run)
    project = next(i for i, run in enumerate(runs) if "pip install -e ." in run)
    assert torch < project
    assert '--index-url "${TORCH_INDEX_URL}"' in runs[torch]
    steps = instructions(REPO / "deploy" / f"Dockerfile.{node}")
    assert build_args(steps, {})["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


@pytest.mark.parametrize("node", DOCKERFILES)
def test_each_image_has_a_c_compiler_for_the_decode_attention_kernel(node: str) -> None:
    """The kernel is built on the host the container runs on (``-march=native``), at
    first start; without a compiler the engine falls back to the slower SDPA."""
    runs = [a for k, a in instructions(REPO / "deploy" / f"Dockerfile.{node}") if k == "RUN"]
    assert any(re.search(r"apt-get install .*\bgcc\b.*\blibc6-dev\b", run) for run in runs)


@pytest.mark.parametrize("node", DOCKERFILES)
def test_copied_files_exist_and_are_not_ignored(node: str) -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copies = [a for k, a in instructions(REPO / "deploy" / f"Dockerfile.{node}") if k == "COPY"]
    assert copies
    for arguments in copies:
        *sources, _destination = arguments.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert source not in ignored, source
    # Every package the project installs reaches the image.
    copied = {s for a in copies for s in a.split()[:-1]}
    assert {
        "app",
        "kernel",
        "conversation",
        "retrieval",
        "inference",
        "safety",
        "alembic",
    } <= copied


@pytest.mark.parametrize(
    ("node", "overrides", "device"),
    [
        ("api", {}, None),
        ("inference", {}, "cpu"),
        ("inference", {"GENERATION_DEVICE": "cuda"}, "cuda"),
    ],
)
def test_image_settings_are_ragserve_s(
    node: str, overrides: dict[str, str], device: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = instructions(REPO / "deploy" / f"Dockerfile.{node}")
    env = image_env(steps, build_args(steps, overrides))
    ragserve_env = {k: v for k, v in env.items() if k not in OTHER_ENV}
    assert env_problems(ragserve_env, monkeypatch) == []
    assert ragserve_env.get("RAGSERVE_GENERATION_DEVICE") == device
    assert ragserve_env["RAGSERVE_DATA_DIR"] == "/data"
