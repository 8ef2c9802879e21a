"""Admission for the batching engine: a bounded waiting queue shared fairly between tenants.

Pure Python and model-free, so the policy is unit-tested on its own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from inference.errors import EngineOverloadedError

if TYPE_CHECKING:
    from collections.abc import Sequence

T = TypeVar("T")


@dataclass(slots=True)
class Ticket(Generic[T]):
    """A waiting request as the scheduler sees it.

    Attributes:
        key: The request id.
        tenant: Whose request it is; admission is round-robin over tenants.
        prompt_tokens: Counted against ``max_waiting_tokens`` while waiting.
        kv_tokens: KV-cache tokens the request reserves once running
            (prompt plus ``max_tokens``).
        deadline: ``time.monotonic()`` after which it is dropped, if any.
        item: The engine's own state for the request.
    """

    key: str
    tenant: str
    prompt_tokens: int
    kv_tokens: int
    deadline: float | None
    item: T


class Scheduler(Generic[T]):
    """Per-tenant FIFO queues, served round-robin, bounded by requests and by tokens.

    One tenant flooding the queue only lengthens its own queue: each admission
    round takes the head of the next tenant in turn, so another tenant's request
    waits for at most one admission per busy tenant.

    Args:
        max_waiting: Most requests that may wait.
        max_waiting_tokens: Most prompt tokens that may wait, all requests together.
    """

    def __init__(self, max_waiting: int, max_waiting_tokens: int) -> None:
        if max_waiting < 0 or max_waiting_tokens < 0:
            raise ValueError("queue bounds must not be negative")
        self.max_waiting = max_waiting
        self.max_waiting_tokens = max_waiting_tokens
        # Tenants in round-robin order: the next to serve first.
        self._queues: OrderedDict[str, deque[Ticket[T]]] = OrderedDict()
        self._by_key: dict[str, Ticket[T]] = {}
        self._waiting_tokens = 0

    @property
    def num_waiting(self) -> int:
        return len(self._by_key)

    @property
    def waiting_tokens(self) -> int:
        return self._waiting_tokens

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def check_room(self, prompt_tokens: int = 0, retry_after: float = 1.0) -> None:
        """Raise ``EngineOverloadedError`` unless a request of ``prompt_tokens`` fits now."""
        if len(self._by_key) >= self.max_waiting:
            raise EngineOverloadedError(
                f"{len(self._by_key)} requests are already waiting", retry_after=retry_after
            )
        if self._waiting_tokens + prompt_tokens > self.max_waiting_tokens:
            raise EngineOverloadedError(
                f"{self._waiting_tokens} prompt tokens are already waiting",
                retry_after=retry_after,
            )

    def submit(self, ticket: Ticket[T], retry_after: float = 1.0) -> None:
        """Queue ``ticket`` behind its tenant's earlier requests.

        Raises:
            EngineOverloadedError: The queue is full by count or by tokens.
        """
        if ticket.key in self._by_key:
            raise ValueError(f"{ticket.key!r} is already waiting")
        self.check_room(ticket.prompt_tokens, retry_after)
        self._queues.setdefault(ticket.tenant, deque()).append(ticket)
        self._by_key[ticket.key] = ticket
        self._waiting_tokens += ticket.prompt_tokens

    def remove(self, key: str) -> T | None:
        """Take a waiting request out of the queue (abort); ``None`` if it is not waiting."""
        ticket = self._by_key.get(key)
        if ticket is None:
            return None
        queue = self._queues[ticket.tenant]
        queue.remove(ticket)
        if not queue:
            del self._queues[ticket.tenant]
        self._forget(ticket)
        return ticket.item

    def pop_expired(self, now: float) -> list[T]:
        """Remove and return the waiting requests whose deadline has passed."""
        expired = [t for t in self._by_key.values() if t.deadline is not None and now >= t.deadline]
        return [item for t in expired if (item := self.remove(t.key)) is not None]

    def drain(self) -> list[T]:
        """Remove and return every waiting request."""
        items = [t.item for t in self._by_key.values()]
        self._queues.clear()
        self._by_key.clear()
        self._waiting_tokens = 0
        return items

    def admit(self, free_slots: int, free_kv_tokens: int) -> list[T]:
        """Take requests to start now, one per tenant in turn.

        Admission stops at the first head request whose ``kv_tokens`` do not fit:
        skipping it for smaller ones could starve a long prompt for ever.

        Args:
            free_slots: How many more sequences may run.
            free_kv_tokens: KV-cache tokens not yet reserved by running sequences.
        """
        admitted: list[T] = []
        while free_slots > 0 and self._queues:
            tenant, queue = next(iter(self._queues.items()))
            head = queue[0]
            if head.kv_tokens > free_kv_tokens:
                break
            queue.popleft()
            # The tenant just served goes to the back of the round.
            self._queues.move_to_end(tenant)
            if not queue:
                del self._queues[tenant]
            self._forget(head)
            admitted.append(head.item)
            free_slots -= 1
            free_kv_tokens -= head.kv_tokens
        return admitted

    def _forget(self, ticket: Ticket[T]) -> None:
        del self._by_key[ticket.key]
        self._waiting_tokens -= ticket.prompt_tokens


def plan_prefill(remaining: Sequence[int], budget: int) -> list[int]:
    """How many prompt tokens each prefilling sequence computes this step.

    Sequences are served in order (oldest first) until ``budget`` tokens are
    used, so one long prompt takes several steps instead of stalling the decoding
    of every other sequence for the whole prompt.

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
