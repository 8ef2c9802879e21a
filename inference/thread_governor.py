"""The engine's intra-op thread count, chosen by timing its own decode steps.

On a CPU node the engine shares the cores with the HTTP server, query embedding
and the vector store. While those are busy, a forward pass split over every core
waits at each operator for whichever of its threads the kernel descheduled: on
2 cores under a search storm a decode step took 123 ms with 2 threads and 103 ms
with 1 (and its worst gaps shrank from 0.24 s to 0.16 s), while on idle cores
2 threads take 38 ms against 53 ms. No fixed count is right, so the governor
measures: every ``every_steps`` decode steps it alternates the other count with
the current one over a few pairs of consecutive steps of the same batch size,
and switches when the other is faster by a margin (noise alone does not flip it).
Alternating step by step compares the two under the same load, whatever the
load does meanwhile.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import structlog
import torch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

logger = structlog.get_logger(__name__)


class ThreadGovernor:
    """Picks the thread count of each forward pass of one worker thread.

    Use it only from that thread: torch's thread count belongs to the thread
    that sets it.
    """

    def __init__(
        self,
        most: int | None = None,
        *,
        adaptive: bool = True,
        pairs: int = 6,
        every_steps: int = 64,
        margin: float = 0.9,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Configure; nothing is measured before the first step.

        Args:
            most: The most threads to use; ``None`` reads torch's count in the
                worker at the first step. With 1 the governor does nothing.
            adaptive: ``False`` leaves the count alone (a count the operator set,
                or a GPU, where the host threads barely matter).
            pairs: Pairs of steps (other count, current count) per comparison.
            every_steps: Decode steps on the current count between comparisons;
                the first comparison starts at once.
            margin: Switch when the other count's steps take at most this share
                of the current one's (the median ratio over the pairs).
            set_threads: Sets the calling thread's intra-op thread count.
            clock: Seconds, for timing steps.

        Raises:
            ValueError: ``pairs`` or ``every_steps`` below one, or ``margin``
                outside (0, 1].
        """
        if pairs < 1 or every_steps < 1 or not 0.0 < margin <= 1.0:
            raise ValueError("pairs and every_steps must be positive and margin in (0, 1]")
        self._most = most or 0
        self._adaptive = adaptive
        self._pairs_needed = pairs
        self._every = every_steps
        self._margin = margin
        self._set_threads = set_threads
        self._clock = clock
        self._current = 0
        self._other = 0
        self._applied = 0
        self._since = every_steps
        self._probing = False
        self._pending: tuple[int, float] | None = None
        self._ratios: list[float] = []

    @property
    def threads(self) -> int:
        """The count decode steps run on now (0 before the first step); prefills
        always run on the most."""
        return self._current

    @contextmanager
    def step(self, rows: int, prefill: bool) -> Iterator[None]:
        """Run one forward pass on the chosen count and time it.

        Args:
            rows: Sequences decoding in this step.
            prefill: Whether the step also prefills prompt tokens; such steps are
                not comparable and always run on the most threads, untimed.
        """
        if not self._adaptive:
            yield
            return
        threads = self._choose(prefill)
        if threads != self._applied:
            self._set_threads(threads)
            self._applied = threads
        started = self._clock()
        yield
        self._record(rows, prefill, threads, self._clock() - started)

    def _choose(self, prefill: bool) -> int:
        if not self._current:
            self._most = self._current = self._most or torch.get_num_threads()
            self._other = max(1, self._current // 2)
        if prefill:
            # NOTE: a prompt's logits differ in the last bits between thread counts
            # (decode steps' do not), so prefill keeps one count: greedy output
            # stays the same whatever the load was.
            return self._most
        if self._other == self._current:
            return self._current
        if not self._probing:
            self._since += 1
            if self._since < self._every:
                return self._current
            self._probing, self._pending, self._ratios = True, None, []
        return self._other if self._pending is None else self._current

    def _record(self, rows: int, prefill: bool, threads: int, seconds: float) -> None:
        if not self._probing:
            return
        if prefill:
            self._pending = None
            return
        if threads == self._other:
            self._pending = (rows, seconds)
            return
        if self._pending is not None and self._pending[0] == rows and seconds > 0:
            self._ratios.append(self._pending[1] / seconds)
        self._pending = None
        if len(self._ratios) < self._pairs_needed:
            return
        ratio = statistics.median(self._ratios)
        if ratio <= self._margin:
            logger.info(
                "engine_threads_changed", threads=self._other, was=self._current, ratio=ratio
            )
            self._current, self._other = self._other, self._current
        self._probing, self._since = False, 0
