"""Exemplar embeddings kept on disk, so a process does not re-embed the bank at start.

The similarity layer embeds ~1,750 exemplar sentences when a guard is built: about
8 s on two cores, paid by every API process at every start. The vectors depend
only on the embedding model and the sentences, so they are stored under the
model cache directory, keyed by the model's fingerprint and a hash of the
sentences, and read back by the next process (a few milliseconds). A missing,
unreadable or mismatched file is recomputed; a file that cannot be written only
costs the next start the same embedding again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import structlog

if TYPE_CHECKING:
    from collections.abc import Sequence

    from safety.types import TextEmbedder

__all__ = ["FingerprintedEmbedder", "cached_embeddings"]

log = structlog.get_logger(__name__)


@runtime_checkable
class FingerprintedEmbedder(Protocol):
    """An embedder that names its model and settings: same fingerprint, same vectors."""

    @property
    def fingerprint(self) -> str: ...


def cached_embeddings(
    embedder: TextEmbedder, texts: Sequence[str], cache_dir: Path | None
) -> np.ndarray:
    """``embedder.embed_documents(texts)``, read from ``cache_dir`` when stored there.

    Nothing is cached without a directory or for an embedder with no fingerprint.
    """
    if cache_dir is None or not isinstance(embedder, FingerprintedEmbedder):
        return _embed(embedder, texts)
    digest = hashlib.sha256(embedder.fingerprint.encode())
    for text in texts:
        digest.update(len(text).to_bytes(8, "big"))
        digest.update(text.encode())
    path = cache_dir / f"exemplars-{digest.hexdigest()[:40]}.npy"
    try:
        vectors = np.load(path, allow_pickle=False)
        if vectors.ndim == 2 and vectors.shape[0] == len(texts):
            return np.asarray(vectors, dtype=np.float32)
        log.warning("exemplar_cache_mismatch", path=str(path), shape=vectors.shape)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("exemplar_cache_unreadable", path=str(path), error=repr(exc))
    vectors = _embed(embedder, texts)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # NOTE: written aside and renamed, so a concurrent reader sees all or nothing.
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as out:
            np.save(out, vectors, allow_pickle=False)
        Path(tmp).replace(path)
    except OSError as exc:
        log.warning("exemplar_cache_unwritable", path=str(path), error=repr(exc))
    return vectors


def _embed(embedder: TextEmbedder, texts: Sequence[str]) -> np.ndarray:
    return np.asarray(embedder.embed_documents(list(texts)), dtype=np.float32)
