"""Building a C kernel: the headers beside its source are part of what names it."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from inference import c_kernel

if TYPE_CHECKING:
    from pathlib import Path


def test_a_changed_header_builds_a_new_library(tmp_path: Path) -> None:
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    source = source_dir / "answer.c"
    source.write_text('#include "value.h"\nint answer(void) { return VALUE; }\n')
    (source_dir / "value.h").write_text("#define VALUE 41\n")
    first = c_kernel.build(source, tmp_path / "kernels")
    (source_dir / "value.h").write_text("#define VALUE 42\n")
    second = c_kernel.build(source, tmp_path / "kernels")
    assert second != first
    assert ctypes.CDLL(str(first)).answer() == 41
    assert ctypes.CDLL(str(second)).answer() == 42
