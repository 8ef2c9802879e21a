"""Safety filters: input checks, prompt-injection detection, stream redaction, audit.

The app composes these; nothing here imports another domain package.
"""

from safety.audit import StoredVerdict, VerdictStore, audit_event
from safety.injection import InjectionDetector, TextEmbedder
from safety.input_guard import NEUTRALISED, InputGuard
from safety.logs import redact_event, redact_value
from safety.markup import sanitize_markup
from safety.normalize import normalize
from safety.output_guard import OutputGuard
from safety.pii import find_pii, redact
from safety.policy import BlockedTopic, Policy
from safety.refusal import FINISH_REASON, refusal_pieces, refusal_text
from safety.stream import StreamRedactor
from safety.types import Action, Category, GuardResult, Stage, Verdict

__all__ = [
    "FINISH_REASON",
    "NEUTRALISED",
    "Action",
    "BlockedTopic",
    "Category",
    "GuardResult",
    "InjectionDetector",
    "InputGuard",
    "OutputGuard",
    "Policy",
    "Stage",
    "StoredVerdict",
    "StreamRedactor",
    "TextEmbedder",
    "Verdict",
    "VerdictStore",
    "audit_event",
    "find_pii",
    "normalize",
    "redact",
    "redact_event",
    "redact_value",
    "refusal_pieces",
    "refusal_text",
    "sanitize_markup",
]
