"""deploy/compose.yaml and deploy/nginx.conf, checked without Docker.

The file must match the Compose Specification (the schema check-jsonschema
vendors), and what the specification cannot see must hold too: every dependency,
URL, upstream and port names a service that exists and listens there.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from jsonschema import Draft202012Validator

from tests.unit.deploy.checks import command_problems, env_problems

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
# The ports the pinned images of the backing services listen on.
IMAGE_PORTS = {"postgres": 5432, "redis": 6379, "qdrant": 6333}
URL_SETTINGS = ("RAGSERVE_DATABASE_URL", "RAGSERVE_REDIS_URL", "RAGSERVE_QDRANT_URL")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

Service = dict[str, Any]


def load(path: Path) -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(path.read_text())
    return compose


def ragserve_services(compose: dict[str, Any]) -> dict[str, Service]:
    return {n: s for n, s in compose["services"].items() if s["image"].startswith("ragserve-")}


def role(service: Service) -> str:
    """The ``ragserve`` subcommand a service runs, or ``""``."""
    command = service.get("command") or []
    return command[1] if command[:1] == ["ragserve"] and len(command) > 1 else ""


def listen_port(compose: dict[str, Any], name: str) -> int | None:
    if name in IMAGE_PORTS:
        return IMAGE_PORTS[name]
    command = compose["services"][name].get("command") or []
    return int(command[command.index("--port") + 1]) if "--port" in command else None


def has_healthcheck(service: Service, deploy: Path) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False)
    if "build" in service:
        dockerfile = deploy / service["build"]["context"] / service["build"]["dockerfile"]
        return re.search(r"^HEALTHCHECK\s+(?!NONE)", dockerfile.read_text(), re.M) is not None
    return False


def compose_problems(compose: dict[str, Any], deploy: Path) -> list[str]:
    """Everything wrong with a compose file that needs no Docker to see."""
    schema = Draft202012Validator(get_builtin_schema("vendor.compose-spec"))
    problems = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in schema.iter_errors(compose)
    ]
    if problems:
        return problems
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    host_ports: list[str] = []
    for name, service in services.items():
        repository, _, tag = service["image"].rpartition(":")
        if not repository or tag == "latest" or not re.search(r"\d", tag):
            problems.append(f"{name}: image {service['image']} is not pinned to a version")
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = spec.get("condition", "service_started")
            if dependency not in services:
                problems.append(f"{name}: depends on {dependency}, which is no service")
            elif condition not in CONDITIONS:
                problems.append(f"{name}: unknown condition {condition}")
            elif condition == "service_healthy" and not has_healthcheck(
                services[dependency], deploy
            ):
                problems.append(f"{name}: waits for {dependency} to be healthy; it has no check")
            elif (
                condition == "service_completed_successfully"
                and services[dependency].get("restart", "no") != "no"
            ):
                problems.append(f"{name}: waits for {dependency} to finish; it restarts")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if not (deploy / source).exists():
                    problems.append(f"{name}: mounts {source}, which does not exist")
            elif source not in declared_volumes:
                problems.append(f"{name}: volume {source} is not declared")
        host_ports += [str(port).split(":")[0] for port in service.get("ports", [])]
        if "build" in service:
            build = service["build"]
            if (deploy / build["context"]).resolve() != REPO:
                problems.append(f"{name}: builds from {build['context']}, not the repository")
            if not (deploy / build["context"] / build["dockerfile"]).is_file():
                problems.append(f"{name}: {build['dockerfile']} does not exist")
    problems += [
        f"host port {p} is published twice" for p, n in Counter(host_ports).items() if n > 1
    ]
    return problems + url_problems(compose) + balancer_problems(compose, deploy)


def url_problems(compose: dict[str, Any]) -> list[str]:
    """Each URL a ragserve service is given names a service and the port it listens on."""
    problems: list[str] = []
    services = compose["services"]
    inference = {n for n, s in ragserve_services(compose).items() if role(s) == "inference"}
    for name, service in ragserve_services(compose).items():
        env = service.get("environment") or {}
        urls = [env[key] for key in URL_SETTINGS if key in env]
        backends = env.get("RAGSERVE_GENERATION_BACKEND_URLS", "")
        urls += backends.split(",") if backends else []
        for url in map(urlsplit, urls):
            host = url.hostname or ""
            if host not in services:
                problems.append(f"{name}: {url.geturl()} names no service")
            elif url.port != listen_port(compose, host):
                problems.append(f"{name}: {url.geturl()}: {host} does not listen on {url.port}")
        if role(service) == "serve" and {urlsplit(u).hostname for u in backends.split(",")} != (
            inference
        ):
            problems.append(
                f"{name}: RAGSERVE_GENERATION_BACKEND_URLS must list {sorted(inference)}"
            )
        if "RAGSERVE_DATABASE_URL" in env:
            database = urlsplit(env["RAGSERVE_DATABASE_URL"])
            postgres = services["postgres"]["environment"]
            if (database.username, database.password, database.path) != (
                postgres["POSTGRES_USER"],
                postgres["POSTGRES_PASSWORD"],
                "/" + postgres["POSTGRES_DB"],
            ):
                problems.append(f"{name}: the database URL's credentials are not postgres'")
    return problems


def balancer_problems(compose: dict[str, Any], deploy: Path) -> list[str]:
    """nginx sends to every API node on its port, and listens where compose publishes."""
    services = compose["services"]
    config = (deploy / "nginx.conf").read_text()
    upstream = re.search(r"upstream ragserve_api \{(.*?)\}", config, re.S)
    if upstream is None:
        return ["nginx.conf has no upstream ragserve_api"]
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(1), re.M)
    api = {
        n: listen_port(compose, n)
        for n, s in ragserve_services(compose).items()
        if role(s) == "serve"
    }
    problems = []
    if {host: int(port) for host, port in servers} != api:
        problems.append(f"nginx upstream {servers} is not the API nodes {api}")
    listen = re.search(r"^\s*listen\s+(\d+);", config, re.M)
    published = [str(p).split(":")[-1] for p in services["lb"].get("ports", [])]
    if listen is None or published != [listen.group(1)]:
        problems.append(f"lb publishes {published}; nginx listens on {listen and listen.group(1)}")
    if "./nginx.conf:/etc/nginx/nginx.conf:ro" not in services["lb"].get("volumes", []):
        problems.append("lb does not mount nginx.conf")
    return problems


COMPOSE = load(DEPLOY / "compose.yaml")


def test_compose_file_is_valid_and_consistent() -> None:
    assert compose_problems(COMPOSE, DEPLOY) == []


def test_the_scaled_topology_is_all_there() -> None:
    roles = Counter(role(s) for s in ragserve_services(COMPOSE).values())
    assert roles == {"serve": 2, "inference": 2, "worker": 1, "migrate": 1}
    images = {name: s["image"].split(":")[0] for name, s in COMPOSE["services"].items()}
    assert {images["postgres"], images["redis"], images["qdrant"], images["lb"]} == {
        "postgres",
        "redis",
        "qdrant/qdrant",
        "nginx",
    }
    for name, service in ragserve_services(COMPOSE).items():
        # A service that serves no HTTP must not inherit the image's HTTP health check.
        if role(service) in {"worker", "migrate"}:
            assert service["healthcheck"] == {"disable": True}, name
        if role(service) == "serve":
            # The worker service indexes; the API nodes only queue.
            assert service["environment"]["RAGSERVE_INGESTION_WORKERS"] == "0"


def test_commands_and_settings_are_ragserve_s(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in ragserve_services(COMPOSE).items():
        assert command_problems(service["command"]) == [], name
        assert env_problems(service.get("environment") or {}, monkeypatch) == [], name


@pytest.mark.parametrize(
    ("text", "replacement", "expected"),
    [
        ("    inference-1:\n      condition", "    inference-9:\n      condition", "inference-9"),
        ("http://inference-0:8001,http://inference-1:8001", "http://inference-0:8001", "must list"),
        ("redis://redis:6379/0", "redis://redis:6380/0", "does not listen on 6380"),
        ("image: redis:7.4.5-bookworm", "image: redis:latest", "not pinned"),
        (
            '    healthcheck:\n      disable: true\n    restart: "no"',
            "    restart: always",
            "it restarts",
        ),
        ('      - "8000:8000"', '      - "8000:80"', "nginx listens"),
        ('    command: ["redis-server"', '    commands: ["redis-server"', "commands"),
    ],
)
def test_a_broken_copy_of_the_compose_file_fails(
    text: str, replacement: str, expected: str
) -> None:
    """Guards the checks themselves: each deliberate mistake is reported."""
    source = (DEPLOY / "compose.yaml").read_text()
    assert source.count(text) == 1
    broken = yaml.safe_load(source.replace(text, replacement))
    problems = compose_problems(broken, DEPLOY)
    assert any(expected in problem for problem in problems), problems


def test_a_broken_upstream_fails(tmp_path: Path) -> None:
    config = (DEPLOY / "nginx.conf").read_text()
    (tmp_path / "nginx.conf").write_text(config.replace("api-2:8000", "api-3:8000"))
    assert any("nginx upstream" in p for p in balancer_problems(COMPOSE, tmp_path))
