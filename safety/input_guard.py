"""The input side of the chain: the user's message and the retrieved chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from safety.chunk_redaction import WHOLE, redact, whole
from safety.injection import InjectionDetector, PatternDetector, SimilarityDetector
from safety.injection_windows import packaged_classifier
from safety.input_checks import TopicMatcher, size_and_characters
from safety.types import Action, Category, GuardResult, Stage, TextEmbedder, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from safety.policy import Policy

# Shown in place of a neutralised chunk's text (``chunk_redaction.REMOVED`` in place
# of the sentences only): the model sees that something was removed without reading
# the instructions it carried.
NEUTRALISED = WHOLE


class InputGuard:
    """Runs a tenant's input and retrieval filters.

    Every method is blocking (the similarity layer embeds); async callers use
    ``asyncio.to_thread``.

    Args:
        policy: The tenant's policy.
        embedder: The app's embedding model; ``None`` disables the similarity
            layers (patterns and keywords still run).
        cache_dir: Where exemplar vectors are kept between processes.
    """

    def __init__(
        self,
        policy: Policy,
        embedder: TextEmbedder | None = None,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        self.policy = policy
        similarity = (
            SimilarityDetector(embedder, threshold=policy.similarity_threshold, cache_dir=cache_dir)
            if embedder is not None
            else None
        )
        self._injection = InjectionDetector(PatternDetector(), similarity)
        # NOTE: chunks are documents, not questions: the patterns alone fired on none
        # of 600 real documentation chunks, the similarity layer on 37-47 % of them.
        self._chunk_injection = InjectionDetector(
            PatternDetector(),
            similarity if policy.chunk_similarity else None,
            packaged_classifier() if policy.chunk_classifier else None,
        )
        # Which sentences of a caught chunk to remove: the patterns and the window
        # classifier, whatever judged the chunk (run on caught chunks only, ~0.5 ms
        # a sentence), so that the rest of a long jailbreak is not kept for want of
        # a pattern.
        self._redaction_judge = InjectionDetector(PatternDetector(), None, packaged_classifier())
        self._topics = TopicMatcher(policy.blocked_topics, embedder)

    def _verdict(
        self, name: str, stage: Stage, category: Category, score: float, reason: str
    ) -> Verdict:
        return Verdict(name, stage, category, self.policy.action_for(category), score, reason)

    def check_input(self, text: str) -> GuardResult:
        """Judge a user's message; stops at the first refusal."""
        verdicts: list[Verdict] = []
        for name in self.policy.input_filters:
            verdict: Verdict | None = None
            if name == "size":
                why = size_and_characters(text, self.policy.max_input_chars)
                if why:
                    verdict = self._verdict(name, Stage.INPUT, Category.INVALID_INPUT, 1.0, why)
            elif name == "injection":
                found = self._injection.detect(text)
                if found.score >= self.policy.injection_threshold:
                    verdict = self._verdict(
                        name, Stage.INPUT, Category.PROMPT_INJECTION, found.score,
                        ",".join(found.rules),
                    )  # fmt: skip
            elif name == "blocked_topics":
                topic = self._topics.match(text)
                if topic is not None:
                    verdict = self._verdict(
                        name, Stage.INPUT, Category.BLOCKED_TOPIC, topic[1], f"topic {topic[0]}"
                    )
            if verdict is not None and verdict.fired:
                verdicts.append(verdict)
                if verdict.action is Action.REFUSE:
                    break
        return GuardResult(text, tuple(verdicts))

    def check_chunks(self, chunks: Sequence[str]) -> list[GuardResult]:
        """Judge retrieved chunks for indirect injection.

        A chunk refused by policy is dropped by the caller (``result.refused``);
        one to redact comes back without the sentences that fire on their own
        (``safety.chunk_redaction``; ``result.removed`` has their spans), or
        replaced by ``NEUTRALISED`` when that does not clear it, when the policy's
        ``retrieval_redaction`` is ``chunk`` or when the similarity layer judges
        chunks (too slow to judge sentence by sentence).
        """
        results = []
        for chunk in chunks:
            if "chunk_injection" not in self.policy.retrieval_filters:
                results.append(GuardResult(chunk))
                continue
            found = self._chunk_injection.detect(chunk)
            if found.score < self.policy.injection_threshold:
                results.append(GuardResult(chunk))
                continue
            verdict = Verdict(
                "chunk_injection",
                Stage.RETRIEVAL,
                Category.PROMPT_INJECTION,
                self.policy.retrieval_action
                or self.policy.actions.get(Category.PROMPT_INJECTION, Action.REDACT),
                found.score,
                ",".join(found.rules),
            )
            if verdict.action is not Action.REDACT:
                results.append(GuardResult(chunk, (verdict,)))
                continue
            if self.policy.chunk_similarity or self.policy.retrieval_redaction == "chunk":
                cut = whole(chunk)
            else:
                cut = redact(chunk, self._chunk_score, self.policy.injection_threshold)
            results.append(GuardResult(cut.text, (verdict,), cut.removed))
        return results

    def _chunk_score(self, text: str) -> float:
        return self._redaction_judge.detect(text).score
