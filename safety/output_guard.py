"""The output side: filters that work on the answer as it streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from safety.harmful import classify_harm
from safety.leakage import LeakDetector
from safety.markup import MARKUP_RULES
from safety.pii import PII_RULES
from safety.refusal import refusal_pieces
from safety.rules import Rule, RuleSet
from safety.stream import StreamRedactor
from safety.types import Action, Category, GuardResult, Stage, Verdict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from safety.policy import Policy

# Sentences are checked for harm at these characters (and at the end).
_BOUNDARIES = (".", "!", "?", "\n")


class OutputGuard:
    """Filters one answer's stream: ``async for piece in guard.stream(pieces)``.

    After the stream, ``result`` holds the verdicts and the text that was sent;
    ``refused`` tells the app to end the turn with ``finish_reason="content_filter"``.
    Released text has already passed every filter, so nothing shown is taken back:
    on a refusal the stream stops and the refusal text follows.
    """

    def __init__(self, policy: Policy, system_prompt: str = "") -> None:
        self.policy = policy
        rules: tuple[Rule, ...] = ()
        if "pii" in policy.output_filters:
            rules += PII_RULES
        if "markup" in policy.output_filters:
            rules += MARKUP_RULES
        self._redactor = StreamRedactor(RuleSet(rules))
        self._leak = LeakDetector(
            system_prompt if "leakage" in policy.output_filters else "", policy.leak_ngram
        )
        self._harm_on = "harmful" in policy.output_filters
        self._sentence = ""
        self._sent: list[str] = []
        self._verdicts: list[Verdict] = []
        self._harm_seen: set[Category] = set()
        self.refused: Category | None = None

    @property
    def result(self) -> GuardResult:
        return GuardResult("".join(self._sent), tuple(self._verdicts + self._redaction_verdicts()))

    def _redaction_verdicts(self) -> list[Verdict]:
        out = []
        by_category: dict[Category, list[str]] = {}
        for rule in (*PII_RULES, *MARKUP_RULES):
            n = self._redactor.counts.get(rule.name, 0)
            if n and f"{rule.name} x{n}" not in by_category.get(rule.category, []):
                by_category.setdefault(rule.category, []).append(f"{rule.name} x{n}")
        for category, reasons in by_category.items():
            action = self.policy.action_for(category)
            name = "markup" if category is Category.UNSAFE_MARKUP else "pii"
            out.append(Verdict(name, Stage.OUTPUT, category, action, 1.0, ", ".join(reasons)))
        return out

    def _check(self, released: str, final: bool) -> Verdict | None:
        """Leak and harm checks on newly released text; a refusing verdict or ``None``."""
        if self._leak.active:
            hits = self._leak.finish() if final else self._leak.feed(released)
            if hits:
                v = Verdict(
                    "leakage", Stage.OUTPUT, Category.SYSTEM_PROMPT_LEAK,
                    self.policy.action_for(Category.SYSTEM_PROMPT_LEAK), min(1.0, hits / 3),
                    f"{hits} system-prompt {self.policy.leak_ngram}-grams",
                )  # fmt: skip
                if v.action is Action.REFUSE:
                    return v
                if not any(x.filter == "leakage" for x in self._verdicts):
                    self._verdicts.append(v)
        if self._harm_on:
            self._sentence += released
            if final or any(b in released for b in _BOUNDARIES):
                found = classify_harm(self._sentence[-2000:])
                self._sentence = self._sentence[-200:]
                if found is not None and found[0] not in self._harm_seen:
                    category, score, rule = found
                    self._harm_seen.add(category)
                    v = Verdict("harmful", Stage.OUTPUT, category,
                                self.policy.action_for(category), score, rule)  # fmt: skip
                    if v.action is Action.REFUSE:
                        return v
                    self._verdicts.append(v)
        return None

    async def stream(self, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
        """Filtered pieces of the answer (empty pieces are skipped)."""
        async for piece in pieces:
            released = self._redactor.feed(piece)
            if not released:
                continue
            refusal = self._check(released, final=False)
            if refusal is not None:
                async for p in self._refuse(refusal):
                    yield p
                return
            self._sent.append(released)
            yield released
        released = self._redactor.flush()
        refusal = self._check(released, final=True)
        if refusal is not None:
            async for p in self._refuse(refusal):
                yield p
            return
        if released:
            self._sent.append(released)
            yield released

    async def _refuse(self, verdict: Verdict) -> AsyncIterator[str]:
        self._verdicts.append(verdict)
        self.refused = verdict.category
        prefix = "\n\n" if self._sent else ""
        for i, p in enumerate(refusal_pieces(verdict.category)):
            p = prefix + p if i == 0 else p
            self._sent.append(p)
            yield p
