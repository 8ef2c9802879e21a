"""Safety for chat turns: the tenant's policy, the guards, and what their verdicts leave behind.

The pipeline asks this gate three questions per turn (is the question acceptable,
which retrieved chunks may be shown, how to filter the answer's stream) and hands
it every verdict to store, count and audit (the labeling queue gets the flagged
answers from ``app/labeling/intake.py``, which sees every reason to review one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

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
    packaged_classifier,
)

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from safety import PolicyStore

log = structlog.get_logger(__name__)

PolicySource = Literal["stored", "file", "default"]


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
        stored: PolicyStore | None = None,
        refresh_s: float = 5.0,
    ) -> None:
        """Args:
        policies: Per-tenant policies of the policy file, with a ``default``.
        embedder: For the similarity layers; ``None`` switches them off.
        verdicts: Where verdicts are stored.
        cache_dir: Where exemplar vectors are kept between processes.
        stored: Tenants' own policies, set by their admins; each replaces the
            file's entry for its tenant, and is read again every ``refresh_s``.
        refresh_s: How often the stored policies are checked for changes.
        """
        self._policies = dict(policies)
        self._cache_dir = cache_dir
        self._embedder = embedder
        self._verdicts = verdicts
        self._input_guards: dict[str, InputGuard] = {}
        self._stored = stored
        self._own: dict[str, tuple[datetime, Policy]] = {}
        self._refresh_s = refresh_s
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Build the guards now (their exemplar embeddings) rather than on a first
        turn; read the stored policies and keep reading them.

        Raises:
            ValueError: The packaged window classifier does not load (a tenant's
                stored policy may turn it on at any time).
        """
        packaged_classifier()
        for key, policy in self._policies.items():
            await self._input_guard(key, policy)
        if self._stored is not None:
            await self.refresh()
            self._refresher = asyncio.create_task(self._keep_fresh(), name="safety-policies")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    def _resolve(self, tenant_id: str) -> tuple[str, Policy]:
        """The tenant's policy and the key its guards are cached under."""
        own = self._own.get(tenant_id)
        if own is not None:
            return f"stored:{tenant_id}:{own[0].isoformat()}", own[1]
        key = tenant_id if tenant_id in self._policies else "default"
        return key, self._policies[key]

    def policy(self, tenant_id: str) -> tuple[PolicySource, Policy]:
        """The tenant's policy and where it comes from: its admin (``stored``), the
        policy file's entry for it (``file``), or the file's ``default``."""
        key, policy = self._resolve(tenant_id)
        source: PolicySource = (
            "stored" if key.startswith("stored:") else "default" if key == "default" else "file"
        )
        return source, policy

    async def set_policy(
        self, tenant_id: str, document: Mapping[str, object] | str, by: str
    ) -> Policy:
        """Store a tenant's own policy; this node applies it at once, others within
        ``refresh_s``.

        Raises:
            InvalidPolicyError: The document is not a valid policy (nothing stored).
            RuntimeError: No policy store was given.
        """
        if self._stored is None:
            raise RuntimeError("this gate has no policy store")
        policy = await self._stored.put(tenant_id, document, by)
        await self.refresh()
        return policy

    async def reset_policy(self, tenant_id: str) -> None:
        """Drop a tenant's own policy: the policy file's applies again."""
        if self._stored is not None:
            await self._stored.delete(tenant_id)
            await self.refresh()

    async def refresh(self) -> None:
        """Read the stored policies that changed since the last read."""
        if self._stored is None:
            return
        versions = await self._stored.versions()
        changed = [t for t, at in versions.items() if self._own.get(t, (None,))[0] != at]
        loaded = await self._stored.policies(changed)
        for tenant_id in set(self._own) - set(versions):
            del self._own[tenant_id]
        for tenant_id, policy in loaded.items():
            self._own[tenant_id] = (versions[tenant_id], policy)
        current = {self._resolve(t)[0] for t in self._own}
        for key in [k for k in self._input_guards if k.startswith("stored:")]:
            if key not in current:
                del self._input_guards[key]
        if changed:
            log.info("safety_policies_loaded", tenants=len(loaded))

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:
                # NOTE: the last policies read stay in force while the database is away.
                log.warning("safety_policies_refresh_failed", error=repr(exc))

    async def _input_guard(self, key: str, policy: Policy) -> InputGuard:
        guard = self._input_guards.get(key)
        if guard is None:
            guard = await asyncio.to_thread(
                InputGuard, policy, self._embedder, cache_dir=self._cache_dir
            )
            self._input_guards[key] = guard
        return guard

    async def check_input(self, tenant_id: str, text: str) -> GuardResult:
        """Judge a question (off the event loop: the similarity layer embeds it)."""
        guard = await self._input_guard(*self._resolve(tenant_id))
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
        guard = await self._input_guard(*self._resolve(tenant_id))
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
                        # What the prompt lost of the chunk, where and what it was,
                        # so the reader and a labeler see what was held back.
                        "removed": [
                            {"start": start, "end": end, "text": source.text[start:end]}
                            for start, end in result.removed
                        ],
                    },
                )
            if result.refused:
                refused.append(replace(source, n=0))
            else:
                kept.append(source)
        return kept, refused, verdicts

    def output_guard(self, tenant_id: str) -> OutputGuard:
        """A fresh stream filter for one answer."""
        return OutputGuard(self._resolve(tenant_id)[1], SYSTEM_PROMPT)

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
