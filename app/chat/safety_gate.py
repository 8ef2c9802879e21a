"""Safety for chat turns: the tenant's policy, the guards, and what their verdicts leave behind.

The pipeline asks this gate three questions per turn (is the question acceptable,
which retrieved chunks may be shown, how to filter the answer's stream) and hands
it every verdict to store, count and audit (the labeling queue gets the flagged
answers from ``app/labeling/intake.py``, which sees every reason to review one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from app.chat.prompt import SYSTEM_PROMPT, Source
from safety import (
    Category,
    GuardResult,
    InputGuard,
    OutputGuard,
    Policy,
    TextEmbedder,
    Verdict,
    VerdictStore,
)

if TYPE_CHECKING:
    from pathlib import Path

log = structlog.get_logger(__name__)


def load_policies(path: Path | None) -> dict[str, Policy]:
    """Per-tenant policies from a JSON file ``{"default": {...}, "<tenant id>": {...}}``.

    Raises:
        ValueError: The file is not valid JSON or names an unknown filter or action.
    """
    if path is None:
        return {"default": Policy()}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the safety policy file {path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"the safety policy file {path} must hold a JSON object")
    policies = {str(k): Policy.from_mapping(v) for k, v in data.items()}
    policies.setdefault("default", Policy())
    return policies


class SafetyGate:
    """The safety filters as the turn pipeline uses them."""

    def __init__(
        self,
        policies: Mapping[str, Policy],
        embedder: TextEmbedder | None,
        verdicts: VerdictStore,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        """Args:
        policies: Per-tenant policies, with a ``default``.
        embedder: For the similarity layers; ``None`` switches them off.
        verdicts: Where verdicts are stored.
        cache_dir: Where exemplar vectors are kept between processes.
        """
        self._policies = dict(policies)
        self._cache_dir = cache_dir
        self._embedder = embedder
        self._verdicts = verdicts
        self._input_guards: dict[str, InputGuard] = {}

    async def start(self) -> None:
        """Build the guards now (their exemplar embeddings) rather than on a first turn."""
        for key in self._policies:
            await self._input_guard(key)

    def _policy_key(self, tenant_id: str) -> str:
        return tenant_id if tenant_id in self._policies else "default"

    def policy(self, tenant_id: str) -> tuple[bool, Policy]:
        """The tenant's policy, and whether it is the tenant's own (not the default)."""
        key = self._policy_key(tenant_id)
        return key != "default", self._policies[key]

    async def _input_guard(self, key: str) -> InputGuard:
        guard = self._input_guards.get(key)
        if guard is None:
            guard = await asyncio.to_thread(
                InputGuard, self._policies[key], self._embedder, cache_dir=self._cache_dir
            )
            self._input_guards[key] = guard
        return guard

    async def check_input(self, tenant_id: str, text: str) -> GuardResult:
        """Judge a question (off the event loop: the similarity layer embeds it)."""
        guard = await self._input_guard(self._policy_key(tenant_id))
        return await asyncio.to_thread(guard.check_input, text)

    async def refusal(self, tenant_id: str, text: str, verdicts: list[Verdict]) -> Category | None:
        """The category of a refused question (its verdicts added to ``verdicts``),
        ``None`` when it may be answered."""
        checked = await self.check_input(tenant_id, text)
        verdicts.extend(checked.verdicts)
        decisive = checked.decisive
        return decisive.category if checked.refused and decisive is not None else None

    async def filter_sources(
        self, tenant_id: str, sources: Sequence[Source]
    ) -> tuple[list[Source], list[Source], list[Verdict]]:
        """Judge chunks for indirect injections, by the tenant's ``retrieval_action``.

        Returns:
            The sources for the prompt (a redacted one with the placeholder as its
            text, a flagged one unchanged, each carrying its ``verdict``), the
            refused ones (left out of the prompt, with their verdict, so the answer
            still names them), and the verdicts to record.
        """
        if not sources:
            return [], [], []
        guard = await self._input_guard(self._policy_key(tenant_id))
        results = await asyncio.to_thread(guard.check_chunks, [s.text for s in sources])
        kept: list[Source] = []
        refused: list[Source] = []
        verdicts: list[Verdict] = []
        for source, result in zip(sources, results, strict=True):
            verdicts.extend(result.verdicts)
            fired = [v for v in result.verdicts if v.fired]
            if fired:
                verdict = fired[0]
                source = replace(
                    source,
                    text=result.text,
                    verdict={
                        "filter": verdict.filter,
                        "action": str(verdict.action),
                        "rules": [r for r in verdict.reason.split(",") if r],
                        "score": round(verdict.score, 4),
                    },
                )
            if result.refused:
                refused.append(replace(source, n=0))
            else:
                kept.append(source)
        return kept, refused, verdicts

    def output_guard(self, tenant_id: str) -> OutputGuard:
        """A fresh stream filter for one answer."""
        return OutputGuard(self._policies[self._policy_key(tenant_id)], SYSTEM_PROMPT)

    async def record(self, tenant_id: str, message_id: str, verdicts: Sequence[Verdict]) -> None:
        """Store, count and audit the verdicts.

        Never raises: a turn's answer is already stored, and losing a verdict must
        not turn it into an error for the client (it is logged instead).
        """
        fired = [v for v in verdicts if v.fired]
        if not fired:
            return
        try:
            await self._verdicts.record(tenant_id, fired, message_id=message_id)
        except Exception as exc:
            log.error("safety_record_failed", message_id=message_id, error=repr(exc))
