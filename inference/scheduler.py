"""Admission for the batching engine: two priority classes, each a fair bounded queue.

Online requests (someone waits for the answer) always go first; batch requests
only take the slots, KV-cache room and prefill budget online traffic leaves free,
and give their slots back (preemption) when an online request cannot start.
Pure Python and model-free, so the policy is unit-tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from inference.fair_queue import FairQueue, Ticket
from inference.types import Priority

if TYPE_CHECKING:
    from collections.abc import Sequence

T = TypeVar("T")


@dataclass(slots=True)
class Admission(Generic[T]):
    """What ``Scheduler.schedule`` decided: requests to start, running ones to stop."""

    admitted: list[T] = field(default_factory=list)
    preempted: list[T] = field(default_factory=list)


class Scheduler(Generic[T]):
    """Per-class, per-tenant queues: online before batch, round-robin over tenants in each.

    Each class has its own bounds, so batch tickets never fill the room online
    requests need: an online request is refused only because of other online ones.

    Args:
        max_waiting: Most online requests that may wait.
        max_waiting_tokens: Most online prompt tokens that may wait, all together.
        max_waiting_batch: Most batch requests that may wait; ``None`` is ``max_waiting``.
        max_waiting_batch_tokens: Most batch prompt tokens that may wait; ``None`` is
            ``max_waiting_tokens``.
    """

    def __init__(
        self,
        max_waiting: int,
        max_waiting_tokens: int,
        max_waiting_batch: int | None = None,
        max_waiting_batch_tokens: int | None = None,
    ) -> None:
        self._queues: dict[Priority, FairQueue[T]] = {
            Priority.ONLINE: FairQueue(max_waiting, max_waiting_tokens),
            Priority.BATCH: FairQueue(
                max_waiting if max_waiting_batch is None else max_waiting_batch,
                max_waiting_tokens
                if max_waiting_batch_tokens is None
                else max_waiting_batch_tokens,
            ),
        }

    @property
    def num_waiting(self) -> int:
        """Waiting requests of both classes."""
        return sum(len(q) for q in self._queues.values())

    @property
    def waiting_tokens(self) -> int:
        """Waiting prompt tokens of both classes."""
        return sum(q.waiting_tokens for q in self._queues.values())

    def waiting(self, priority: Priority) -> int:
        """Waiting requests of one class."""
        return len(self._queues[priority])

    def __contains__(self, key: str) -> bool:
        return any(key in q for q in self._queues.values())

    def check_room(
        self, prompt_tokens: int = 0, retry_after: float = 1.0, priority: Priority = Priority.ONLINE
    ) -> None:
        """Raise ``EngineOverloadedError`` unless a request of ``prompt_tokens`` fits its queue."""
        self._queues[priority].check_room(prompt_tokens, retry_after)

    def submit(self, ticket: Ticket[T], retry_after: float = 1.0) -> None:
        """Queue ``ticket`` behind its tenant's earlier requests of its class.

        Raises:
            EngineOverloadedError: Its class's queue is full by count or by tokens.
        """
        if ticket.key in self:
            raise ValueError(f"{ticket.key!r} is already waiting")
        queue = self._queues[ticket.priority]
        queue.check_room(ticket.prompt_tokens, retry_after)
        queue.push(ticket)

    def requeue(self, ticket: Ticket[T]) -> None:
        """Put a preempted request back at the head of its class, whatever the bounds.

        NOTE: the bounds are for new work; a request that was already admitted must
        never be dropped for lack of room, and it resumes before newer requests.
        """
        if ticket.key in self:
            raise ValueError(f"{ticket.key!r} is already waiting")
        self._queues[ticket.priority].push(ticket, first=True)

    def remove(self, key: str) -> T | None:
        """Take a waiting request out of the queue (abort); ``None`` if it is not waiting."""
        for queue in self._queues.values():
            ticket = queue.remove(key)
            if ticket is not None:
                return ticket.item
        return None

    def pop_expired(self, now: float) -> list[T]:
        """Remove and return the waiting requests whose deadline has passed."""
        expired: list[T] = []
        for queue in self._queues.values():
            for ticket in queue.tickets():
                if ticket.deadline is not None and now >= ticket.deadline:
                    queue.remove(ticket.key)
                    expired.append(ticket.item)
        return expired

    def drain(self) -> list[T]:
        """Remove and return every waiting request."""
        items: list[T] = []
        for queue in self._queues.values():
            for ticket in queue.tickets():
                queue.remove(ticket.key)
                items.append(ticket.item)
        return items

    def next_online(self) -> Ticket[T] | None:
        """The online ticket admission tries next; ``None`` when no online request waits."""
        return self._queues[Priority.ONLINE].head()

    def admit(
        self, free_slots: int, free_kv_tokens: int, batch_slots: int | None = None
    ) -> list[T]:
        """Take requests to start now: online ones first, one per tenant in turn.

        Batch requests are taken only when no online request is left waiting (not
        even one that does not fit), and at most ``batch_slots`` of them. Within a
        class, admission stops at the first head request whose ``kv_tokens`` do not
        fit: skipping it for smaller ones could starve a long prompt for ever.

        Args:
            free_slots: How many more sequences may run.
            free_kv_tokens: KV-cache tokens not yet reserved by running sequences.
            batch_slots: How many more batch sequences may run; ``None`` is no cap.
        """
        return [t.item for t in self._admit(free_slots, free_kv_tokens, batch_slots)]

    def schedule(
        self,
        free_slots: int,
        free_kv_tokens: int,
        batch_slots: int,
        running_batch: Sequence[Ticket[T]],
    ) -> Admission[T]:
        """``admit``, preempting running batch sequences for online requests that wait.

        While an online request waits that the free slots or KV-cache room cannot
        take, the newest running batch sequences are preempted (``plan_preemption``)
        and requeued at the head of the batch queue, oldest first, and admission
        runs again.

        Args:
            free_slots: How many more sequences may run.
            free_kv_tokens: KV-cache tokens not yet reserved by running sequences.
            batch_slots: How many more batch sequences may run.
            running_batch: The running batch sequences as they would wait again
                (``prompt_tokens``: all they must recompute), oldest admission first.
        """
        decided: Admission[T] = Admission()
        running = list(running_batch)
        while True:
            taken = self._admit(free_slots, free_kv_tokens, batch_slots)
            decided.admitted += [t.item for t in taken]
            free_slots -= len(taken)
            free_kv_tokens -= sum(t.kv_tokens for t in taken)
            batch_slots -= sum(1 for t in taken if t.priority is Priority.BATCH)
            head = self.next_online()
            # NOTE: batch requests are admitted only when no online one is left
            # waiting, so none of ``taken`` is ever preempted in the same call.
            if head is None:
                return decided
            count = plan_preemption(
                [t.kv_tokens for t in running], free_slots, free_kv_tokens, head.kv_tokens
            )
            if count == 0:
                return decided
            victims, running = running[-count:], running[:-count]
            for ticket in reversed(victims):
                self.requeue(ticket)
            decided.preempted += [t.item for t in reversed(victims)]
            free_slots += count
            free_kv_tokens += sum(t.kv_tokens for t in victims)
            batch_slots += count

    def _admit(
        self, free_slots: int, free_kv_tokens: int, batch_slots: int | None
    ) -> list[Ticket[T]]:
        admitted: list[Ticket[T]] = []
        online = self._queues[Priority.ONLINE]
        free_slots, free_kv_tokens = _take(online, free_slots, free_kv_tokens, admitted)
        if len(online) == 0:
            room = free_slots if batch_slots is None else min(free_slots, batch_slots)
            _take(self._queues[Priority.BATCH], room, free_kv_tokens, admitted)
        return admitted


def _take(
    queue: FairQueue[T], slots: int, kv_tokens: int, into: list[Ticket[T]]
) -> tuple[int, int]:
    """Move heads of ``queue`` into ``into`` while they fit; return the slots and KV left."""
    while slots > 0 and (head := queue.head()) is not None and head.kv_tokens <= kv_tokens:
        into.append(queue.pop_head())
        slots -= 1
        kv_tokens -= head.kv_tokens
    return slots, kv_tokens


def plan_preemption(
    batch_kv_tokens: Sequence[int], free_slots: int, free_kv_tokens: int, need_kv_tokens: int
) -> int:
    """How many running batch sequences to preempt so that a waiting online one can start.

    The most recently admitted go first (they have the least work to redo), and
    no more than needed: one slot and ``need_kv_tokens`` of KV-cache room.

    Args:
        batch_kv_tokens: KV tokens each running batch sequence reserves, oldest first.
        free_slots: Slots free now.
        free_kv_tokens: KV-cache tokens free now.
        need_kv_tokens: What the online request reserves.

    Returns:
        The number of newest batch sequences to preempt; 0 when the online request
        fits already, or would not fit even with every batch sequence preempted
        (online sequences hold the room; preempting would only waste work).
    """
    if free_slots >= 1 and free_kv_tokens >= need_kv_tokens:
        return 0
    for count, kv in enumerate(reversed(batch_kv_tokens), start=1):
        free_slots += 1
        free_kv_tokens += kv
        if free_slots >= 1 and free_kv_tokens >= need_kv_tokens:
            return count
    return 0


def plan_prefill(remaining: Sequence[int], budget: int) -> list[int]:
    """How many prompt tokens each prefilling sequence computes this step.

    Sequences are served in order until ``budget`` tokens are used, so one long
    prompt takes several steps instead of stalling the decoding of every other
    sequence for the whole prompt. The engine lists online sequences first (oldest
    first), then batch ones, so batch prefill gets only what online prefill leaves.

    Args:
        remaining: Prompt tokens still to compute, per sequence.
        budget: Prefill tokens allowed this step (at least 1).

    Returns:
        Tokens per sequence, same order; 0 for sequences that wait a step.
    """
    plan: list[int] = []
    for left in remaining:
        take = min(left, max(budget, 0))
        plan.append(take)
        budget -= take
    return plan
