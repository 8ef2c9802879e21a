"""The query embedder's thread yields the CPU to the rest of the process (decode)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import numpy as np

from retrieval.query_embedder import NICENESS, QueryEmbedder

if TYPE_CHECKING:
    from collections.abc import Sequence


async def test_queries_are_embedded_on_a_thread_of_lower_priority() -> None:
    seen: list[tuple[int, int]] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        tid = threading.get_native_id()
        seen.append((tid, os.getpriority(os.PRIO_PROCESS, tid)))
        return np.ones((len(texts), 4), dtype=np.float32) / 2

    embedder = QueryEmbedder(embed, window_s=0.0)
    try:
        vector = await embedder.embed("where is the reactor?")
        assert vector.shape == (4,)
        await embedder.embed("and its crew?")
    finally:
        await embedder.close()
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert {tid for tid, _ in seen} != {threading.get_native_id()}
    assert {nice for _, nice in seen} == {min(mine + NICENESS, 19)}
