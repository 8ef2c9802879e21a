"""The engine's thread count follows whichever count makes decode steps faster."""

from __future__ import annotations

import pytest

from inference.thread_governor import ThreadGovernor


class Machine:
    """A fake clock whose steps take a time that depends on the thread count."""

    def __init__(self, seconds_by_threads: dict[int, float]) -> None:
        self.seconds_by_threads = seconds_by_threads
        self.now = 0.0
        self.threads = 0
        self.sets: list[int] = []

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        self.sets.append(threads)

    def clock(self) -> float:
        return self.now

    def run(self, governor: ThreadGovernor, steps: int, rows: int = 1) -> list[int]:
        """Run ``steps`` decode steps; the count each one ran on."""
        used = []
        for _ in range(steps):
            with governor.step(rows, prefill=False):
                used.append(self.threads)
                self.now += self.seconds_by_threads[self.threads]
        return used


def governor(machine: Machine) -> ThreadGovernor:
    return ThreadGovernor(
        2, pairs=3, every_steps=10, set_threads=machine.set_threads, clock=machine.clock
    )


def test_it_moves_to_fewer_threads_when_they_are_faster_and_back_when_not() -> None:
    machine = Machine({2: 0.12, 1: 0.10})
    chosen = governor(machine)
    # The first comparison starts at once: other, current, other, current...
    assert machine.run(chosen, 6) == [1, 2, 1, 2, 1, 2]
    assert chosen.threads == 1
    assert machine.run(chosen, 9) == [1] * 9
    # The cores free up: the next comparison (after 10 steps) moves back.
    machine.seconds_by_threads = {2: 0.04, 1: 0.05}
    assert machine.run(chosen, 7) == [2, 1, 2, 1, 2, 1, 2]
    assert chosen.threads == 2


def test_a_difference_within_the_margin_keeps_the_current_count() -> None:
    machine = Machine({2: 0.100, 1: 0.095})
    chosen = governor(machine)
    machine.run(chosen, 6)
    assert chosen.threads == 2
    assert machine.run(chosen, 9) == [2] * 9


def test_only_pairs_of_equal_decode_steps_are_compared() -> None:
    machine = Machine({2: 0.12, 1: 0.10})
    chosen = governor(machine)
    # A prefill step breaks the pair it interrupts.
    with chosen.step(1, prefill=False):
        assert machine.threads == 1
        machine.now += 0.10
    with chosen.step(1, prefill=True):
        assert machine.threads == 2
        machine.now += 5.0
    # A pair whose batch changed size in between is not compared either.
    with chosen.step(1, prefill=False):
        machine.now += 0.10
    with chosen.step(4, prefill=False):
        machine.now += 0.5
    assert chosen.threads == 2
    machine.run(chosen, 6)
    assert chosen.threads == 1
    # Prompts always run on the most threads: their logits depend on the count.
    with chosen.step(1, prefill=True):
        assert machine.threads == 2
    assert machine.run(chosen, 1) == [1]


def test_one_thread_or_a_fixed_count_is_left_alone() -> None:
    machine = Machine({1: 0.1, 2: 0.1})
    single = ThreadGovernor(1, set_threads=machine.set_threads, clock=machine.clock)
    fixed = ThreadGovernor(adaptive=False, set_threads=machine.set_threads, clock=machine.clock)
    machine.threads = 1
    machine.run(single, 100)
    machine.run(fixed, 100)
    assert machine.sets == [1]
    assert single.threads == 1


def test_bad_settings_are_refused() -> None:
    for pairs, every_steps, margin in ((0, 64, 0.9), (6, 0, 0.9), (6, 64, 0.0), (6, 64, 1.5)):
        with pytest.raises(ValueError, match="margin"):
            ThreadGovernor(2, pairs=pairs, every_steps=every_steps, margin=margin)
