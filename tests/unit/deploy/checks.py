"""What deployment files may say to ragserve: real settings, real commands.

Shared by the Kubernetes, compose and Dockerfile tests: every ``RAGSERVE_*`` name
must be a field of ``app.core.settings.Settings`` (and its value must parse), and
every command must be a ``ragserve`` subcommand whose options click accepts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from app.cli import main
from app.core.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import pytest

__all__ = [
    "command_problems",
    "env_problems",
    "setting_names",
]


def setting_names() -> frozenset[str]:
    """Every environment variable ragserve reads, from the settings model itself."""
    names: set[str] = set()
    root_prefix = Settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseSettings):
            prefix = section.model_config.get("env_prefix", "")
            names.update(f"{prefix}{sub}".upper() for sub in section.model_fields)
        else:
            names.add(f"{root_prefix}{name}".upper())
    return frozenset(names)


def env_problems(
    env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    other_names: Iterable[str] = (),
) -> list[str]:
    """Names ragserve does not read, and values its settings reject.

    Args:
        env: A container's environment.
        monkeypatch: Sets the environment while ``Settings`` reads it.
        other_names: Names that are not ragserve's but are expected (``OMP_NUM_THREADS``).
    """
    known = setting_names() | set(other_names)
    problems = [f"{name} is not a ragserve setting" for name in sorted(set(env) - known)]
    for name in list(os.environ):
        if name.startswith("RAGSERVE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if not isinstance(value, str):
            problems.append(f"{name}: {value!r} is not a string")
            continue
        monkeypatch.setenv(name, value)
    try:
        Settings()
    except ValidationError as exc:
        problems.append(f"settings reject the values: {exc}")
    return problems


def command_problems(argv: Sequence[str]) -> list[str]:
    """Why ``argv`` is not a ``ragserve`` command line click would accept."""
    if len(argv) < 2 or argv[0] != "ragserve":
        return [f"{list(argv)} does not run a ragserve subcommand"]
    name, args = argv[1], list(argv[2:])
    command = main.commands.get(name)
    if command is None:
        return [f"`ragserve {name}` does not exist (have {sorted(main.commands)})"]
    try:
        command.make_context(name, args)
    except click.ClickException as exc:
        return [f"`ragserve {name}` rejects {args}: {exc.format_message()}"]
    return []
