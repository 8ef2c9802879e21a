"""A bounded waiting queue shared fairly between tenants: one per priority class.

Pure Python and model-free, so the policy is unit-tested on its own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from inference.errors import EngineOverloadedError
from inference.types import Priority

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
        priority: Its class; each class waits in a queue of its own.
    """

    key: str
    tenant: str
    prompt_tokens: int
    kv_tokens: int
    deadline: float | None
    item: T
    priority: Priority = Priority.ONLINE


class FairQueue(Generic[T]):
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

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    @property
    def waiting_tokens(self) -> int:
        return self._waiting_tokens

    def head(self) -> Ticket[T] | None:
        """The ticket ``pop_head`` takes next (the next tenant's oldest), if any."""
        if not self._queues:
            return None
        return next(iter(self._queues.values()))[0]

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

    def push(self, ticket: Ticket[T], *, first: bool = False) -> None:
        """Queue ``ticket`` without checking the bounds.

        Args:
            ticket: What waits.
            first: Put it before its tenant's other requests, and its tenant first in
                the round (a preempted request resumes before anything newer).
        """
        if ticket.key in self._by_key:
            raise ValueError(f"{ticket.key!r} is already waiting")
        queue = self._queues.setdefault(ticket.tenant, deque())
        if first:
            queue.appendleft(ticket)
            self._queues.move_to_end(ticket.tenant, last=False)
        else:
            queue.append(ticket)
        self._by_key[ticket.key] = ticket
        self._waiting_tokens += ticket.prompt_tokens

    def pop_head(self) -> Ticket[T]:
        """Take the head ticket; its tenant goes to the back of the round."""
        tenant, queue = next(iter(self._queues.items()))
        ticket = queue.popleft()
        self._queues.move_to_end(tenant)
        if not queue:
            del self._queues[tenant]
        self._forget(ticket)
        return ticket

    def remove(self, key: str) -> Ticket[T] | None:
        """Take a waiting ticket out (abort, deadline); ``None`` if it is not waiting."""
        ticket = self._by_key.get(key)
        if ticket is None:
            return None
        queue = self._queues[ticket.tenant]
        queue.remove(ticket)
        if not queue:
            del self._queues[ticket.tenant]
        self._forget(ticket)
        return ticket

    def tickets(self) -> list[Ticket[T]]:
        """Every waiting ticket (in no promised order)."""
        return list(self._by_key.values())

    def _forget(self, ticket: Ticket[T]) -> None:
        del self._by_key[ticket.key]
        self._waiting_tokens -= ticket.prompt_tokens
