"""This CPU's model name and flags, as /proc/cpuinfo gives them."""

from __future__ import annotations

from pathlib import Path

from kernel.cpu import cpu_flags, cpu_model


def test_flags_are_the_first_cpus_flags_line() -> None:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    first = next(line for line in lines if line.startswith("flags"))

    assert cpu_flags() == frozenset(first.split(":", 1)[1].split())
    assert "fpu" in cpu_flags()


def test_model_is_the_first_model_name() -> None:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    first = next(line for line in lines if line.startswith("model name"))

    assert cpu_model() == first.split(":", 1)[1].strip()
