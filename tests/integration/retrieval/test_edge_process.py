"""The Qdrant Edge child process: it restarts after a crash, ends on close and dies with
its parent.

Guards the process model of ``ProcessEdgeVectorStore`` (the contract suite covers what
it answers): a crashed child must not leave requests hanging, and no child may outlive
the process that started it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from retrieval.errors import VectorStoreUnavailableError
from retrieval.vector_store import ChunkPoint, ProcessEdgeVectorStore

if TYPE_CHECKING:
    from pathlib import Path

DIM = 8
TENANT = "aaaaaaaa-0000-0000-0000-000000000001"


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped still answers kill(0); its state says it is gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


async def open_and_close(store: ProcessEdgeVectorStore) -> None:
    await store.ensure_ready(DIM)
    await store.close()


async def test_a_crashed_child_is_restarted_with_the_shard_reopened(tmp_path: Path) -> None:
    store = ProcessEdgeVectorStore(tmp_path, collection_name="test_chunks")
    await store.ensure_ready(DIM)
    points = [ChunkPoint(TENANT, "c", "d", "d.txt", i, f"t{i}", unit(i)) for i in range(5)]
    await store.upsert(points)
    first = store.pid
    assert first is not None
    # A search the child holds when it dies fails at once with a 503, never hangs.
    os.kill(first, signal.SIGSTOP)
    held = asyncio.create_task(store.search(TENANT, unit(1), 1))
    await asyncio.sleep(0.2)
    assert not held.done()
    os.kill(first, signal.SIGKILL)
    with pytest.raises(VectorStoreUnavailableError, match="exited"):
        await asyncio.wait_for(held, 10)
    assert wait_gone(first)
    # The next call starts a new child, which reopens the shard.
    assert await store.count(TENANT) == 5  # the write-ahead log kept every point
    found = await store.search(TENANT, unit(3), 1)
    assert found[0].hit.position == 3
    second = store.pid
    assert second is not None
    assert second != first
    await store.check_health()
    await store.close()
    assert wait_gone(second)
    with pytest.raises(VectorStoreUnavailableError):
        await store.count(TENANT)


async def test_a_hung_child_is_killed_and_replaced(tmp_path: Path) -> None:
    """A stopped (not dead) child: the search waits its timeout, then the child is
    killed and the search gets a 503; the next call starts a new child."""
    store = ProcessEdgeVectorStore(tmp_path, collection_name="test_chunks", read_timeout_s=0.5)
    await store.ensure_ready(DIM)
    await store.upsert([ChunkPoint(TENANT, "c", "d", "d.txt", 0, "t", unit(0))])
    first = store.pid
    assert first is not None
    os.kill(first, signal.SIGSTOP)
    with pytest.raises(VectorStoreUnavailableError, match=r"did not answer 'search' in 0\.5 s"):
        await asyncio.wait_for(store.search(TENANT, unit(0), 1), 10)
    assert wait_gone(first)
    assert await store.count(TENANT) == 1
    assert store.pid not in (None, first)
    await store.close()


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys, time\n"
        "from retrieval.vector_store import ProcessEdgeVectorStore\n"
        "async def main():\n"
        f"    store = ProcessEdgeVectorStore({str(tmp_path)!r})\n"
        "    await store.ensure_ready(8)\n"
        "    print(store.pid, flush=True)\n"
        "    time.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    # A successor opens the shard at once, as a restarted server would (it waits out
    # the predecessor child's lock if it must).
    asyncio.run(open_and_close(ProcessEdgeVectorStore(tmp_path)))
    assert wait_gone(child), "the Edge child outlived its parent"
