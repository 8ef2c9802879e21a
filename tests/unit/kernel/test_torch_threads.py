"""Threads beside an in-process CPU engine run torch on one thread and make no
OpenMP pool; the engine's own count stays torch's default."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING

import pytest
import torch

from kernel import torch_threads
from kernel.torch_threads import (
    default_threads,
    one_torch_thread,
    pin_if_beside_engine,
    share_cores_with_engine,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

needs_cores = pytest.mark.skipif(default_threads() < 2, reason="one core: nothing to pin")


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _in_thread(fn: Callable[[], object]) -> object:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    torch_threads._beside_engine = False
    torch.set_num_threads(default_threads())


@needs_cores
def test_a_pinned_thread_keeps_one_thread_whatever_is_set_elsewhere_and_makes_no_pool() -> None:
    ready, go = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def pinned() -> None:
        one_torch_thread()
        ready.set()
        go.wait()
        before = _os_threads()
        a = torch.randn(512, 512)
        for _ in range(5):
            torch.mm(a, a)
        seen["threads"] = torch.get_num_threads()
        seen["new_os_threads"] = _os_threads() - before

    thread = threading.Thread(target=pinned)
    thread.start()
    ready.wait()
    torch.set_num_threads(default_threads())  # the engine's worker sets its count
    go.set()
    thread.join()
    assert seen == {"threads": 1, "new_os_threads": 0}


@needs_cores
def test_a_thread_that_is_not_pinned_takes_the_last_count_set() -> None:
    """Why ``one_torch_thread`` makes its first parallel call itself."""
    ready, go = threading.Event(), threading.Event()
    seen: list[int] = []

    def unpinned() -> None:
        torch.set_num_threads(1)  # without the parallel call that fixes it
        ready.set()
        go.wait()
        torch.ones(1 << 16).sum()
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=unpinned)
    thread.start()
    ready.wait()
    torch.set_num_threads(default_threads())
    go.set()
    thread.join()
    assert seen == [default_threads()]


@needs_cores
async def test_sharing_pins_the_loop_its_executor_and_late_threads_until_undone() -> None:
    assert _in_thread(lambda: (pin_if_beside_engine(), torch.get_num_threads())[1]) == (
        default_threads()
    )
    undo = share_cores_with_engine(asyncio.get_running_loop())
    assert torch.get_num_threads() == 1
    assert await asyncio.to_thread(torch.get_num_threads) == 1
    torch.set_num_threads(default_threads())  # as the engine's worker does, elsewhere
    assert _in_thread(lambda: (pin_if_beside_engine(), torch.get_num_threads())[1]) == 1
    undo()
    assert torch.get_num_threads() == default_threads()
    assert _in_thread(lambda: (pin_if_beside_engine(), torch.get_num_threads())[1]) == (
        default_threads()
    )
