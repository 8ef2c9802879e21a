"""Which of a version's endpoints takes a request.

- **Health first.** Healthy endpoints that did not just answer "overloaded" come
  first, then the healthy ones. When none is healthy the balancer fails open: it
  returns the endpoint that failed least recently, as LiteLLM does, so a flapping
  cluster whose nodes are back does not answer 503 until the next probe round.
- **Least outstanding, weighted.** The endpoint with the fewest requests running
  from this node per unit of weight (``outstanding / weight``) wins, so a node of
  weight 2 carries twice the concurrent requests of a node of weight 1. Ties are
  broken by a draw weighted by weight: idle endpoints all get traffic, in
  proportion to their weights, even when requests never overlap.
- **Conversation affinity.** The turns of one conversation should reach the node
  whose prefix cache holds its system prompt, sources and history. The endpoint is
  chosen by weighted rendezvous (highest-random-weight) hashing of the
  conversation key over the candidate URLs: the score of an endpoint is
  ``-weight / ln(h)`` with ``h`` a hash of (key, URL) in (0, 1), so every API node
  picks the same endpoint for the same conversation with no shared state; when an
  endpoint leaves the candidates (unhealthy, drained) only its conversations move,
  each to its second choice, and they come back when it returns.
- **Slack.** The affinity choice stands unless it runs more than ``affinity_slack``
  requests above its weighted share of the least-loaded candidate's load; then
  least outstanding decides. The default, 4, is small next to the batch sizes of
  a GPU node (tens of sequences), where a few more sequences add little to each
  decode step, while re-reading a conversation's prefix elsewhere costs a prefill
  of thousands of tokens. A larger slack would let a few long conversations pile
  onto one node; it counts only this API node's requests, so with several API
  nodes the node's real excess may be larger.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import TYPE_CHECKING

import structlog

from app.routing.health import State

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.routing.endpoints import Endpoint
    from app.routing.health import HealthPolicy

__all__ = ["DEFAULT_AFFINITY_SLACK", "Balancer", "least_loaded", "rendezvous"]

log = structlog.get_logger(__name__)

DEFAULT_AFFINITY_SLACK = 4
"""Requests an affinity choice may run above its share before load wins; see above."""


def _unit_hash(key: str, url: str) -> float:
    """A stable number in (0, 1) from ``key`` and ``url``: the same on every node."""
    digest = hashlib.blake2b(f"{key}\x1f{url}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def rendezvous(key: str, endpoints: Sequence[Endpoint]) -> Endpoint:
    """The endpoint ``key`` maps to by weighted rendezvous hashing over URLs."""
    if not endpoints:
        raise ValueError("no endpoint to choose from")
    return max(endpoints, key=lambda e: -e.weight / math.log(_unit_hash(key, e.url)))


def least_loaded(endpoints: Sequence[Endpoint], rng: random.Random) -> Endpoint:
    """The endpoint with the fewest outstanding requests per weight; ties by weighted draw."""
    if not endpoints:
        raise ValueError("no endpoint to choose from")
    lowest = min(e.outstanding / e.weight for e in endpoints)
    tied = [e for e in endpoints if e.outstanding / e.weight <= lowest]
    if len(tied) == 1:
        return tied[0]
    return rng.choices(tied, weights=[e.weight for e in tied])[0]


class Balancer:
    """Chooses the endpoint of a request among a version's candidates."""

    def __init__(
        self, affinity_slack: float = DEFAULT_AFFINITY_SLACK, rng: random.Random | None = None
    ) -> None:
        """Args:
        affinity_slack: Requests an affinity choice may run above its share of the
            least-loaded candidate's load before least outstanding wins.
        rng: The tie-breaking draw (seed one in tests).
        """
        if affinity_slack < 0:
            raise ValueError("affinity_slack must not be negative")
        self.affinity_slack = affinity_slack
        # Load balancing, not security: a seeded PRNG is what tests need.
        self._rng = rng or random.Random()  # noqa: S311

    def pick(self, candidates: Sequence[Endpoint], affinity_key: str | None = None) -> Endpoint:
        """The endpoint for a request of conversation ``affinity_key`` (``None``: any).

        Candidates of weight 0 are never picked.

        Raises:
            ValueError: No candidate of positive weight.
        """
        weighted = [e for e in candidates if e.weight > 0]
        if not weighted:
            raise ValueError("no endpoint of positive weight to choose from")
        if affinity_key is None:
            return least_loaded(weighted, self._rng)
        chosen = rendezvous(affinity_key, weighted)
        lowest = min(e.outstanding / e.weight for e in weighted)
        if chosen.outstanding <= chosen.weight * lowest + self.affinity_slack:
            return chosen
        return least_loaded(weighted, self._rng)

    def choose(
        self, candidates: Sequence[Endpoint], policy: HealthPolicy, affinity_key: str | None
    ) -> Endpoint | None:
        """The endpoint for a request among ``candidates`` (started, of positive weight,
        not yet tried), healthy ones first; ``None`` when there is none."""
        healthy = [e for e in candidates if policy.state(e.health) is State.HEALTHY]
        ready = [e for e in healthy if not policy.busy(e.health)]
        for tier in (ready, healthy):
            if tier:
                return self.pick(tier, affinity_key)
        if not candidates:
            return None
        endpoint = min(candidates, key=lambda e: e.health.last_failure_at or -math.inf)
        log.debug("router_fail_open", version=endpoint.key, endpoint=endpoint.label)
        return endpoint
