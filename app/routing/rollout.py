"""Which version of a model answers a turn, and which shadow versions get a copy.

- A tenant pin wins: A/B by tenant sends all of a tenant's turns to one version.
- A conversation keeps the version that answered its earlier turns while that
  version still serves the model (stable or canary), so changing the split never
  flips a conversation mid-way.
- A new conversation falls in the canary when a hash of its id lands below the
  canary percentage. The hash, not a random draw, makes the choice the same on every
  API node and for every retry, and raising the percentage keeps the conversations
  already on the canary there.
- Shadows sample turns by a hash of the message id, again the same on every node.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from app.routing.specs import VersionSpec

if TYPE_CHECKING:
    from app.routing.specs import ModelSpec

__all__ = ["Arm", "Choice", "bucket", "choose", "shadows_for"]

Arm = Literal["stable", "canary", "pinned"]


@dataclass(frozen=True, slots=True)
class Choice:
    """The version that answers and why (the arm is exported on metrics)."""

    version: VersionSpec
    arm: Arm


def bucket(*parts: str) -> float:
    """A stable number in [0, 100) from ``parts``: the same on every node and run."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def choose(
    model: ModelSpec,
    *,
    tenant_id: str,
    conversation_id: str | None,
    previous_version: str | None = None,
) -> Choice:
    """The version answering this turn of ``conversation_id`` for ``tenant_id``."""
    rollout = model.rollout
    pinned = rollout.tenant_pins.get(tenant_id)
    if pinned is not None and pinned in model.versions:
        return Choice(model.versions[pinned], "pinned")
    serving = {rollout.stable, rollout.canary}
    if previous_version is not None and previous_version in serving:
        arm: Arm = "canary" if previous_version == rollout.canary else "stable"
        return Choice(model.versions[previous_version], arm)
    if (
        rollout.canary is not None
        and conversation_id is not None
        and bucket(model.name, conversation_id) < rollout.canary_percent
    ):
        return Choice(model.versions[rollout.canary], "canary")
    return Choice(model.versions[rollout.stable], "stable")


def shadows_for(model: ModelSpec, message_id: str, answering: str) -> list[VersionSpec]:
    """The shadow versions that get a copy of this turn (never the one answering)."""
    return [
        model.versions[s.version]
        for s in model.rollout.shadows
        if s.version != answering
        and s.version in model.versions
        and bucket("shadow", s.version, message_id) < s.sample_rate * 100
    ]
