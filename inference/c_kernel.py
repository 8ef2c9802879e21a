"""Build a C kernel's shared library on this machine, once, and load it.

The engine's CPU attention kernels (``decode_attention.c``, ``prefill_attention.c``,
both including ``bf16.h``) are compiled on first use with the machine's C compiler
(``-O3 -march=native -ffast-math -fopenmp``, so they use whatever vector units this
CPU has) into ``<cache_dir>/kernels``, named by a hash of the source and the headers
beside it, the flags, the compiler and the CPU's flags, and loaded with ``ctypes``
(which releases the GIL while they run). Their OpenMP is the ``libgomp.so.1`` torch
has already loaded, so all share one thread pool.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING, ClassVar, Self

import structlog

from inference.errors import ModelLoadError
from kernel.cpu import cpu_flags

if TYPE_CHECKING:
    from pathlib import Path

    import torch

logger = structlog.get_logger(__name__)

FLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC")
"""Compile flags. ``-ffast-math`` only compiles: linked, GCC adds ``crtfastmath.o``,
whose constructor sets flush-to-zero for the loading thread, so the process's own
float arithmetic would lose subnormals."""
LINK_FLAGS = ("-shared", "-fopenmp")


def kernel_name(source: Path) -> str:
    """``decode_attention.c`` -> ``"decode attention"``, for messages."""
    return source.stem.replace("_", " ")


def build(source: Path, directory: Path) -> Path:
    """``source``'s shared library for this CPU under ``directory``, compiled if missing.

    Raises:
        ModelLoadError: No C compiler, or it failed.
    """
    name = kernel_name(source)
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise ModelLoadError(f"no C compiler (cc) to build the {name} kernel")
    # The headers beside it (``bf16.h``) are part of what it compiles to.
    text = b"\0".join(p.read_bytes() for p in [source, *sorted(source.parent.glob("*.h"))])
    version = subprocess.run(  # noqa: S603 - the compiler found on PATH, fixed arguments
        [compiler, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    key = hashlib.sha256(
        b"\0".join([text, " ".join(FLAGS + LINK_FLAGS).encode(), version.encode(),
                    " ".join(sorted(cpu_flags())).encode()])
    ).hexdigest()[:16]  # fmt: skip
    target = directory / f"{source.stem}-{key}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        built, compiled = scratch + "/" + target.name, scratch + "/" + source.stem + ".o"
        steps = (
            [compiler, *FLAGS, "-c", "-o", compiled, str(source)],
            [compiler, *LINK_FLAGS, "-o", built, compiled, "-lm"],
        )
        for argv in steps:
            done = subprocess.run(  # noqa: S603 - the compiler found on PATH, our source
                argv, capture_output=True, text=True, timeout=300, check=False
            )
            if done.returncode != 0:
                error = done.stderr[-2000:]
                raise ModelLoadError(f"building the {name} kernel failed: {error}")
        os.replace(built, target)  # atomic: another process may be building it too
    logger.info("c_kernel_built", kernel=source.stem, path=str(target))
    return target


CHOICES = ("auto", "kernel", "sdpa")
"""Where an attention runs: the kernel when it builds (else SDPA, with a warning), the
kernel or refuse to start, torch's SDPA."""


def check_choice(setting: str, value: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``CHOICES``."""
    if value not in CHOICES:
        raise ValueError(f"{setting} must be one of {CHOICES}, not {value!r}")


class AttentionKernel:
    """A loaded attention kernel, written for some shapes only (subclasses say which)."""

    NAME: ClassVar[str]
    """``decode_attention``, ``prefill_attention``: names its log events."""
    BOUNDS: ClassVar[dict[str, object]]
    """The shapes it takes, as logged when a model's are not among them."""

    def supports(self, dtype: torch.dtype, rep: int, head_dim: int) -> bool:
        raise NotImplementedError

    def usable_for(self, dtype: torch.dtype, rep: int, head_dim: int) -> Self | None:
        """This kernel if it takes the model's shapes; else ``None`` (SDPA), said in a
        warning, since the kernel was loaded and the log already names it."""
        if self.supports(dtype, rep, head_dim):
            return self
        logger.warning(
            f"{self.NAME}_kernel_unsupported_using_sdpa",
            dtype=str(dtype),
            heads_per_kv_head=rep,
            head_dim=head_dim,
            **self.BOUNDS,
        )
        return None


def load_chosen(
    choice: str, source: Path, cache_dir: Path, device: torch.device
) -> ctypes.CDLL | None:
    """``source``'s library if ``choice`` (one of ``CHOICES``) asks for it and it can
    be had on ``device``; ``None`` means SDPA. Logged either way as
    ``<stem>_kernel_loaded`` or ``<stem>_kernel_unavailable``.

    Raises:
        ModelLoadError: ``choice`` is ``"kernel"`` and it cannot be had.
    """
    if choice == "sdpa":
        return None
    try:
        if device.type != "cpu":
            raise ModelLoadError(f"the {kernel_name(source)} kernel runs on the CPU only")
        path = build(source, cache_dir / "kernels")
        library = ctypes.CDLL(str(path))
    except (ModelLoadError, OSError, subprocess.SubprocessError) as exc:
        if choice == "kernel":
            raise ModelLoadError(str(exc)) from exc
        if device.type == "cpu":
            logger.warning(f"{source.stem}_kernel_unavailable", error=str(exc), using="sdpa")
        return None
    logger.info(f"{source.stem}_kernel_loaded", library=str(path))
    return library
