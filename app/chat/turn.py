"""What a chat turn is asked to do: its request, its options and the pipeline's limits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from inference import ChatMessage, InvalidRequestError, Priority, SamplingParams
from inference.sampling import validate_sampling


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    top_k: int = 4
    score_floor: float = 0.2
    history_token_budget: int = 600
    instructions_token_budget: int = 400
    context_token_budget: int = 1200
    default_max_tokens: int = 256
    max_tokens_limit: int = 1024
    max_message_chars: int = 8000
    temperature: float = 0.0
    repetition_penalty: float = 1.0
    prompt_bias: float = 0.0
    no_repeat_ngram: int = 0

    def __post_init__(self) -> None:
        # NOTE: a default sampling the engine refuses would fail every turn; the
        # engine's own check refuses it here, when the deployment starts.
        defaults = SamplingParams(
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            prompt_bias=self.prompt_bias,
            no_repeat_ngram=self.no_repeat_ngram,
        )
        try:
            validate_sampling(defaults)
        except InvalidRequestError as exc:
            raise ValueError(f"RAGSERVE_GENERATION_* default sampling: {exc}") from exc


@dataclass(frozen=True, slots=True)
class TurnOptions:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float | None = None
    retrieval_k: int | None = None
    collection: str | None = None
    score_floor: float | None = None


@dataclass(frozen=True, slots=True)
class TurnRequest:
    tenant_id: str
    conversation_id: str | None
    content: str
    options: TurnOptions = field(default_factory=TurnOptions)
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subject: str | None = None
    """The caller's principal subject (``Principal.subject``), for rate limits and usage;
    the owner of a conversation the turn creates."""
    history: tuple[ChatMessage, ...] | None = None
    """Earlier turns given by the caller (the OpenAI-compatible API); ``None`` loads
    the stored conversation's recent turns instead."""
    instructions: str | None = None
    """The caller's own system prompt, put before ragserve's (sources and citation rules)."""
    model: str | None = None
    """The public model name the client asked for; ``None`` takes the node's default."""
    priority: Priority = Priority.ONLINE
    """The engine's traffic class: batch lines only take what online turns leave free."""
