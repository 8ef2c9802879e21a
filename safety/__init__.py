"""Safety filters: input checks, prompt-injection detection, stream redaction, audit.

The app composes these; nothing here imports another domain package.

NOTE: the names below are imported on first use (``kernel.lazy``), so that a
caller of one light module does not load every heavy one.
"""

from typing import TYPE_CHECKING

from kernel.lazy import lazy_exports

if TYPE_CHECKING:
    from safety.audit import StoredVerdict, VerdictStore, audit_event
    from safety.injection import InjectionDetector
    from safety.injection_windows import packaged_classifier
    from safety.input_guard import NEUTRALISED, InputGuard
    from safety.logs import redact_event, redact_value
    from safety.markup import sanitize_markup
    from safety.normalize import normalize
    from safety.output_guard import OutputGuard
    from safety.pii import find_pii, redact
    from safety.policy import BlockedTopic, Policy
    from safety.policy_store import InvalidPolicyError, PolicyStore
    from safety.refusal import FINISH_REASON, refusal_pieces, refusal_text
    from safety.stream import StreamRedactor
    from safety.types import Action, Category, GuardResult, Stage, TextEmbedder, Verdict
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "audit": (
                "StoredVerdict",
                "VerdictStore",
                "audit_event",
            ),
            "injection": ("InjectionDetector",),
            "injection_windows": ("packaged_classifier",),
            "input_guard": (
                "NEUTRALISED",
                "InputGuard",
                "InvalidPolicyError",
            ),
            "logs": (
                "redact_event",
                "redact_value",
            ),
            "markup": ("sanitize_markup",),
            "normalize": ("normalize",),
            "output_guard": ("OutputGuard",),
            "pii": (
                "find_pii",
                "redact",
            ),
            "policy": (
                "BlockedTopic",
                "Policy",
                "PolicyStore",
            ),
            "policy_store": (
                "InvalidPolicyError",
                "PolicyStore",
            ),
            "refusal": (
                "FINISH_REASON",
                "refusal_pieces",
                "refusal_text",
            ),
            "stream": ("StreamRedactor",),
            "types": (
                "Action",
                "Category",
                "GuardResult",
                "Stage",
                "TextEmbedder",
                "Verdict",
            ),
        },
    )

__all__ = [
    "FINISH_REASON",
    "NEUTRALISED",
    "Action",
    "BlockedTopic",
    "Category",
    "GuardResult",
    "InjectionDetector",
    "InputGuard",
    "InvalidPolicyError",
    "OutputGuard",
    "Policy",
    "PolicyStore",
    "Stage",
    "StoredVerdict",
    "StreamRedactor",
    "TextEmbedder",
    "Verdict",
    "VerdictStore",
    "audit_event",
    "find_pii",
    "normalize",
    "packaged_classifier",
    "redact",
    "redact_event",
    "redact_value",
    "refusal_pieces",
    "refusal_text",
    "sanitize_markup",
]
