"""Per-tenant safety policy: which filters run and what each category leads to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safety.types import Action, Category

INPUT_FILTERS = ("size", "injection", "blocked_topics")
RETRIEVAL_FILTERS = ("chunk_injection",)
OUTPUT_FILTERS = ("pii", "markup", "leakage", "harmful")
REDACTIONS = ("sentences", "chunk")
"""What ``redact`` removes from a caught chunk (``Policy.retrieval_redaction``)."""

DEFAULT_ACTIONS: Mapping[Category, Action] = {
    Category.PROMPT_INJECTION: Action.REFUSE,
    Category.INVALID_INPUT: Action.REFUSE,
    Category.BLOCKED_TOPIC: Action.REFUSE,
    Category.PII: Action.REDACT,
    Category.SECRET: Action.REDACT,
    Category.SYSTEM_PROMPT_LEAK: Action.REFUSE,
    Category.VIOLENCE: Action.FLAG,
    Category.SELF_HARM: Action.FLAG,
    Category.WEAPONS: Action.REFUSE,
    Category.UNSAFE_MARKUP: Action.REDACT,
}


@dataclass(frozen=True, slots=True)
class BlockedTopic:
    """A subject a tenant does not want discussed.

    Attributes:
        name: Shown in verdict reasons (never the user's text).
        keywords: Whole words or phrases; a match on the normalised text fires.
        examples: Sentences about the topic; with an embedder, a text whose
            embedding is at least ``threshold`` close to one of them fires.
        threshold: Cosine similarity for ``examples``.
    """

    name: str
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    threshold: float = 0.6


@dataclass(frozen=True, slots=True)
class Policy:
    """What safety does for one tenant.

    Attributes:
        input_filters: Names of the input filters to run, in order.
        retrieval_filters: Names of the filters run on retrieved chunks.
        output_filters: Names of the stream filters on the answer.
        actions: Action per category; categories not listed use ``DEFAULT_ACTIONS``.
        blocked_topics: The tenant's forbidden subjects.
        max_input_chars: Longer messages are refused as invalid input.
        injection_threshold: Injection score at or above which the category fires.
        similarity_threshold: Cosine to an attack exemplar that counts as an attack.
        leak_ngram: Words in a row of the system prompt that count as leaking it.
        retrieval_action: What the retrieval filter does with a chunk it judges an
            indirect injection: ``redact`` (the model sees a placeholder), ``refuse``
            (left out of the prompt) or ``flag`` (kept; the verdict is recorded).
            The answer's sources name the chunk and the verdict either way. Unset:
            the ``prompt_injection`` action of ``actions`` if given, else redact.
        chunk_similarity: Also judge chunks by their sentences' similarity to attack
            exemplars, not by the patterns alone. Off by default: on real
            documentation it neutralised 37-47 % of the chunks (imperative technical
            prose resembles instructions) and costs ~200 ms a chunk (``bench/quality.py``).
        chunk_classifier: Also judge chunks with the learned window classifier
            (``safety.injection_windows``), which catches most jailbreaks planted
            in a document that the patterns miss, at ~0.3 ms a chunk. On by
            default: on held-out documentation it touches at most 0.3 % of the
            chunks, on novels and web text 1.5 % (``docs/benchmarks.md``); a
            tenant whose corpus is mostly conversation may turn it off. Its
            score is 0.5 at its own calibrated threshold; ``injection_threshold``
            moves its cut as it moves the other layers'.
        retrieval_redaction: What ``redact`` removes from a caught chunk:
            ``sentences`` (those that carry the attack, ``safety.chunk_redaction``;
            the rest of the chunk stays in the prompt) or ``chunk`` (all of it).
    """

    input_filters: tuple[str, ...] = INPUT_FILTERS
    retrieval_filters: tuple[str, ...] = RETRIEVAL_FILTERS
    output_filters: tuple[str, ...] = OUTPUT_FILTERS
    actions: Mapping[Category, Action] = field(default_factory=dict)
    blocked_topics: tuple[BlockedTopic, ...] = ()
    max_input_chars: int = 32_000
    injection_threshold: float = 0.5
    similarity_threshold: float = 0.62
    leak_ngram: int = 8
    retrieval_action: Action | None = None
    chunk_similarity: bool = False
    chunk_classifier: bool = True
    retrieval_redaction: str = "sentences"

    def action_for(self, category: Category) -> Action:
        """The action this tenant takes for ``category``."""
        if category is Category.NONE:
            return Action.ALLOW
        return self.actions.get(category, DEFAULT_ACTIONS.get(category, Action.FLAG))

    def to_mapping(self) -> dict[str, Any]:
        """The policy as a JSON document ``from_mapping`` reads back to an equal one."""
        document: dict[str, Any] = {
            "input_filters": list(self.input_filters),
            "retrieval_filters": list(self.retrieval_filters),
            "output_filters": list(self.output_filters),
            "actions": {str(c): str(a) for c, a in self.actions.items()},
            "blocked_topics": [
                {
                    "name": t.name,
                    "keywords": list(t.keywords),
                    "examples": list(t.examples),
                    "threshold": t.threshold,
                }
                for t in self.blocked_topics
            ],
            "max_input_chars": self.max_input_chars,
            "injection_threshold": self.injection_threshold,
            "similarity_threshold": self.similarity_threshold,
            "leak_ngram": self.leak_ngram,
            "chunk_similarity": self.chunk_similarity,
            "chunk_classifier": self.chunk_classifier,
            "retrieval_redaction": self.retrieval_redaction,
        }
        if self.retrieval_action is not None:
            document["retrieval_action"] = str(self.retrieval_action)
        return document

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        """Build a policy from settings or a tenant's JSON document.

        Raises:
            ValueError: An unknown filter, category or action name.
        """
        known = {"input_filters": INPUT_FILTERS, "retrieval_filters": RETRIEVAL_FILTERS}
        known["output_filters"] = OUTPUT_FILTERS
        kwargs: dict[str, Any] = {}
        for key, allowed in known.items():
            if key in data:
                names = tuple(str(n) for n in data[key])
                unknown = set(names) - set(allowed)
                if unknown:
                    raise ValueError(f"unknown {key}: {sorted(unknown)}")
                kwargs[key] = names
        if "actions" in data:
            kwargs["actions"] = {
                Category(str(c)): Action(str(a)) for c, a in dict(data["actions"]).items()
            }
        if "blocked_topics" in data:
            kwargs["blocked_topics"] = tuple(
                BlockedTopic(
                    name=str(t["name"]),
                    keywords=tuple(t.get("keywords", ())),
                    examples=tuple(t.get("examples", ())),
                    threshold=float(t.get("threshold", 0.6)),
                )
                for t in data["blocked_topics"]
            )
        for key in ("max_input_chars", "leak_ngram"):
            if key in data:
                kwargs[key] = int(data[key])
        for key in ("injection_threshold", "similarity_threshold"):
            if key in data:
                kwargs[key] = float(data[key])
        if "retrieval_action" in data:
            action = Action(str(data["retrieval_action"]))
            if action is Action.ALLOW:
                raise ValueError("retrieval_action: leave out 'chunk_injection' to allow all")
            kwargs["retrieval_action"] = action
        if "retrieval_redaction" in data:
            if data["retrieval_redaction"] not in REDACTIONS:
                raise ValueError(f"retrieval_redaction must be one of {list(REDACTIONS)}")
            kwargs["retrieval_redaction"] = data["retrieval_redaction"]
        for key in ("chunk_similarity", "chunk_classifier"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ValueError(f"{key} must be true or false")
                kwargs[key] = data[key]
        return cls(**kwargs)
