"""What this CPU is: its model name and the feature flags ``/proc/cpuinfo`` reports.

Machines of one kind differ (some have AMX and avx512_bf16, some only AVX2), so
kernels, the engine's dtype and every benchmark's header read the flags from here.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or "unknown", frozenset[str]()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return model, flags
    found_model = False
    for line in lines:
        if line.startswith("model name") and not found_model:
            model, found_model = line.split(":", 1)[1].strip(), True
        elif line.startswith("flags") and not flags:
            flags = frozenset(line.split(":", 1)[1].split())
    return model, flags


def cpu_model() -> str:
    """The first CPU's model name, e.g. ``"AMD EPYC"``."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """Every flag ``/proc/cpuinfo`` reports for the first CPU (empty where it cannot be read)."""
    return _cpuinfo()[1]
