"""Prometheus counter of safety verdicts (the app serves the default registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter

if TYPE_CHECKING:
    from collections.abc import Iterable

    from safety.types import Verdict

VERDICTS = Counter(
    "ragserve:safety_verdicts_total",
    "Safety verdicts that fired, by stage, category and action.",
    ["stage", "category", "action"],
)


def count_verdicts(verdicts: Iterable[Verdict]) -> None:
    """Count every verdict that fired (allow verdicts are not counted)."""
    for v in verdicts:
        if v.fired:
            VERDICTS.labels(
                stage=v.stage.value, category=v.category.value, action=v.action.value
            ).inc()
