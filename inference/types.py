"""Value types shared by every engine implementation and its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Priority(StrEnum):
    """Which traffic class a request is in (docs/engine.md, "Priority classes").

    ``online`` is someone waiting for the answer; ``batch`` is offline work (the
    OpenAI-style batch jobs) that only takes the slots and prefill budget online
    traffic leaves free, and may be preempted and resumed later.
    """

    ONLINE = "online"
    BATCH = "batch"


class FinishReason(StrEnum):
    """Why a generation ended (OpenAI's vocabulary plus ``cancelled`` and ``error``)."""

    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick the next token and when to stop.

    ``temperature == 0`` means greedy decoding. ``seed`` makes sampled decoding
    reproducible. ``stop`` strings are never part of the returned text.
    ``repetition_penalty`` (> 1 discourages) follows Hugging Face's rule but only
    over the tokens generated so far: a RAG answer should be free to repeat the
    words of its sources. ``prompt_bias`` (>= 0) is added to the logit of every
    token the prompt contains (special tokens excepted) before anything else: it
    leans an answer toward the words of its sources (in-process engines and
    ragserve nodes; other backends never see it). ``no_repeat_ngram`` (0: off, else
    2-64) forbids the answer a run of that many tokens it already holds (Hugging
    Face's ``no_repeat_ngram_size``): it stops loops without penalising the words a
    grounded answer repeats (the same engines and nodes only).
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float = 1.0
    prompt_bias: float = 0.0
    no_repeat_ngram: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat to render with the model's chat template."""

    role: str
    content: str


@dataclass(slots=True)
class GenerationRequest:
    """One request to an engine.

    Attributes:
        request_id: Unique id; ``Engine.abort`` takes it.
        prompt_token_ids: The rendered prompt (see ``Engine.render_chat``); when
            empty, the engine renders ``messages`` with its own chat template.
        sampling: Decoding parameters.
        tenant_id: Who asks; the batching engine shares slots fairly by it.
        deadline: ``time.monotonic()`` value after which the request is cancelled.
        messages: The chat to answer, for engines that render it themselves (a
            remote engine only takes messages; local ones use them when
            ``prompt_token_ids`` is empty).
        priority: Its traffic class; engines without classes treat every request alike.
    """

    request_id: str
    prompt_token_ids: list[int] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tenant_id: str = ""
    deadline: float | None = None
    messages: tuple[ChatMessage, ...] = ()
    priority: Priority = Priority.ONLINE


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A piece of generated text.

    ``index`` counts the events of one request from 0, without gaps, so a client
    can resume after the last index it saw. ``text`` is never empty.
    """

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class FinishEvent:
    """The last event of every request, whatever the ending."""

    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None


GenerationEvent = TokenEvent | FinishEvent
