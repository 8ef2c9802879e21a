"""Value types of the safety package: actions, categories, stages and verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np


class Action(StrEnum):
    """What to do with a text a filter judged. Ordered by severity (see ``severity``)."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    REFUSE = "refuse"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.REDACT: 2, Action.REFUSE: 3}


class Stage(StrEnum):
    """Where in a turn a verdict was given."""

    INPUT = "input"
    RETRIEVAL = "retrieval"
    OUTPUT = "output"


class Category(StrEnum):
    """What a filter found."""

    NONE = "none"
    PROMPT_INJECTION = "prompt_injection"
    INVALID_INPUT = "invalid_input"
    BLOCKED_TOPIC = "blocked_topic"
    PII = "pii"
    SECRET = "secret"  # noqa: S105 (a verdict category name)
    SYSTEM_PROMPT_LEAK = "system_prompt_leak"
    VIOLENCE = "violence"
    SELF_HARM = "self_harm"
    WEAPONS = "weapons"
    UNSAFE_MARKUP = "unsafe_markup"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One filter's judgement of one text.

    ``reason`` names the rule that fired and never quotes the text: verdicts are
    stored, logged and shown to labelers, and the text may hold PII.
    """

    filter: str
    stage: Stage
    category: Category = Category.NONE
    action: Action = Action.ALLOW
    score: float = 0.0
    reason: str = ""

    @property
    def fired(self) -> bool:
        return self.action is not Action.ALLOW


@dataclass(frozen=True, slots=True)
class GuardResult:
    """What a chain of filters decided about one text.

    Attributes:
        text: The text to use from now on (redacted or neutralised when a filter
            said so; the original otherwise).
        verdicts: Every verdict that fired, in chain order.
        removed: Character spans of the original text that ``text`` no longer
            holds (a redacted chunk's offending sentences, or all of it).
    """

    text: str
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)
    removed: tuple[tuple[int, int], ...] = ()

    @property
    def action(self) -> Action:
        return strongest(v.action for v in self.verdicts)

    @property
    def refused(self) -> bool:
        return self.action is Action.REFUSE

    @property
    def flagged(self) -> bool:
        return any(v.action is Action.FLAG for v in self.verdicts)

    @property
    def decisive(self) -> Verdict | None:
        """The most severe verdict (the first of equals), or ``None`` when all allowed."""
        fired = [v for v in self.verdicts if v.fired]
        return max(fired, key=lambda v: v.action.severity, default=None)


def strongest(actions: Iterable[Action]) -> Action:
    """The most severe of ``actions`` (``ALLOW`` for none)."""
    return max(actions, key=lambda a: a.severity, default=Action.ALLOW)


class TextEmbedder(Protocol):
    """The part of the app's embedder this package uses (unit-length float32 rows)."""

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...
