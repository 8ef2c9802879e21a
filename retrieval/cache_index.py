"""FAISS indexes of the chunk cache: exact inner-product search, on the GPU when there is one.

The cache keeps one ``QueryIndex`` per tenant, collection and mode, holding the
vectors of recent queries; a new query looks up its nearest recent neighbour
there. Vectors are unit length, so inner product is cosine similarity.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import faiss
import numpy as np

Device = Literal["auto", "cpu", "gpu"]

_gpu_lock = threading.Lock()
_gpu_resources: Any = None


def gpu_available() -> bool:
    """Whether this FAISS build sees a GPU (``faiss-cpu`` always says no)."""
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return bool(get_num_gpus is not None and get_num_gpus() > 0)


def resolve_device(device: Device) -> Literal["cpu", "gpu"]:
    """``auto`` means the GPU when FAISS sees one.

    Raises:
        RuntimeError: ``gpu`` was asked for and FAISS sees none.
    """
    if device == "gpu" and not gpu_available():
        raise RuntimeError("the chunk cache was configured for the GPU, but FAISS sees none")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    return device


def _flat_ip(dimension: int, device: Literal["cpu", "gpu"]) -> Any:
    index = faiss.IndexFlatIP(dimension)
    if device == "cpu":
        return index
    global _gpu_resources
    with _gpu_lock:
        # One StandardGpuResources (scratch memory, streams) for every index of the process.
        if _gpu_resources is None:
            _gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(_gpu_resources, 0, index)


class QueryIndex:
    """An exact inner-product index of recent query vectors, each tagged with an entry id.

    Removal leaves a tombstone; the index is rebuilt when tombstones outnumber the
    live vectors (flat GPU indexes cannot remove single vectors).
    """

    def __init__(self, dimension: int, device: Literal["cpu", "gpu"] = "cpu") -> None:
        self._dimension = dimension
        self._index = _flat_ip(dimension, device)
        self._ids: list[int | None] = []
        self._vectors: list[np.ndarray | None] = []
        self._slots: dict[int, int] = {}
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def add(self, entry_id: int, vector: np.ndarray) -> None:
        row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self._dimension)
        self._index.add(row)
        self._slots[entry_id] = len(self._ids)
        self._ids.append(entry_id)
        self._vectors.append(row[0])
        self._live += 1

    def remove(self, entry_id: int) -> None:
        slot = self._slots.pop(entry_id, None)
        if slot is None:
            return
        self._ids[slot] = None
        self._vectors[slot] = None
        self._live -= 1
        if len(self._ids) - self._live > max(16, self._live):
            self._compact()

    def nearest(self, vector: np.ndarray) -> tuple[int, float] | None:
        """The live entry whose vector is most similar to ``vector``, and that similarity."""
        if self._live == 0:
            return None
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self._dimension)
        want = min(len(self._ids), 1 + len(self._ids) - self._live)
        scores, slots = self._index.search(query, want)
        for score, slot in zip(scores[0], slots[0], strict=True):
            entry = self._ids[slot] if slot >= 0 else None
            if entry is not None:
                return entry, float(score)
        return None

    def _compact(self) -> None:
        kept = [(i, v) for i, v in zip(self._ids, self._vectors, strict=True) if i is not None]
        self._index.reset()
        self._ids = [i for i, _ in kept]
        self._vectors = [v for _, v in kept]
        self._slots = {entry: slot for slot, (entry, _) in enumerate(kept) if entry is not None}
        if kept:
            self._index.add(np.stack([v for _, v in kept if v is not None]))
