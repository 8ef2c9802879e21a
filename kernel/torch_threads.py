"""Keeping torch's OpenMP threads to the engine, where a CPU engine runs in the process.

torch's OpenMP (libgomp) keeps a pool of helper threads for every thread that has
run a parallel region, and once the pools hold more threads than the machine has
CPUs it stops spinning between regions and puts its helpers to sleep instead:
every region then pays a wake-up. An engine's forward pass is hundreds of short
regions: one decode row took 13.5 ms with the engine's pool the only one and 25.6
ms once any other thread had run a single 2-thread product (2-core Xeon; 23.5 against
14.8 ms a token in a served engine beside the embedder). So where an engine runs on
the CPU in this process, every other thread that runs torch (the event loop's, its
executor's, the query embedder's) runs it on one thread, which makes no pool; the
engine loads its model on a thread that ends with the load
(``inference/threaded_engine.py``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

_DEFAULT_THREADS = torch.get_num_threads()
"""torch's own intra-op count, read at import, before any thread pins itself."""

_beside_engine = False


def default_threads() -> int:
    """torch's default intra-op thread count in this process (what it started with)."""
    return _DEFAULT_THREADS


def one_torch_thread() -> None:
    """Run the calling thread's torch work on one thread from now on.

    NOTE: ATen sets a thread's count at its first parallel call, from the last count
    set by any thread, so that call is made here, between two settings of 1.
    """
    torch.set_num_threads(1)
    torch.ones(1 << 16).sum()
    torch.set_num_threads(1)


def share_cores_with_engine(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """From now on, torch runs on one thread outside the engine's worker: on this
    (the event loop's) thread, on the loop's executor's, and on threads that call
    ``pin_if_beside_engine`` as they start.

    Returns:
        Undoes it for threads that start later and for this one (the engine gone).
    """
    global _beside_engine
    _beside_engine = True
    one_torch_thread()
    workers = min(32, (os.cpu_count() or 1) + 4)  # asyncio's own default
    loop.set_default_executor(
        ThreadPoolExecutor(workers, thread_name_prefix="ragserve-io", initializer=one_torch_thread)
    )

    def undo() -> None:
        global _beside_engine
        _beside_engine = False
        torch.set_num_threads(_DEFAULT_THREADS)

    return undo


def pin_if_beside_engine() -> None:
    """``one_torch_thread`` where a CPU engine shares this process (a thread's start)."""
    if _beside_engine:
        one_torch_thread()
