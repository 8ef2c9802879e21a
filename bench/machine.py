"""What machine a benchmark ran on: every benchmark prints this line and stores it in
its JSON, because machines of one kind differ (some have AMX and avx512_bf16, where
bf16 matmuls are several times fp32; some have neither)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from kernel.cpu import cpu_flags, cpu_model

REPO = Path(__file__).resolve().parents[1]

CPU_FLAGS = ("fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
"""The flags that decide which kernels (and which dtype) win on a CPU."""


def machine() -> dict[str, Any]:
    """The CPU model, core count, the flags of ``CPU_FLAGS`` it has, and the commit."""
    model, flags = cpu_model(), cpu_flags()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "python": platform.python_version(),
        "git_commit": commit,
    }


def describe(info: dict[str, Any] | None = None) -> str:
    """One line for the console: ``CPU <model>, <n> cores, flags <flags>``."""
    info = info or machine()
    flags = " ".join(info["cpu_flags"]) or "none of " + "/".join(CPU_FLAGS)
    return f"CPU {info['cpu']}, {info['cores']} cores, flags {flags}"
