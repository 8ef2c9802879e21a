"""The node's OpenAI wire models and their conversions to and from the engine's types.

Requests ignore fields they do not know (as OpenAI does) but check the types of
those they know strictly: ``"10"`` is not a ``max_tokens``.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inference.node.errors import NodeError
from inference.types import ChatMessage, FinishReason, GenerationRequest, Priority, SamplingParams

MAX_MESSAGES = 1024
"""Messages one request may carry."""
MAX_STOP = 4
"""Stop sequences per request, as OpenAI allows."""
_NOT_FIELDS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class MessageIn(WireModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str

    def to_message(self) -> ChatMessage:
        # OpenAI's newer name for the system role; chat templates know only the old one.
        return ChatMessage("system" if self.role == "developer" else self.role, self.content)


class StreamOptions(WireModel):
    include_usage: bool = False


StopStr = Annotated[str, Field(min_length=1, max_length=256)]


class ChatCompletionRequest(WireModel):
    """``POST /v1/chat/completions``; ``top_k`` and ``repetition_penalty`` as in vLLM.

    ``priority`` is ragserve's own: ``"batch"`` runs the request in the engine's
    batch class (docs/engine.md), behind online traffic; ``RemoteEngine`` sends it.
    So are ``prompt_bias`` and ``no_repeat_ngram`` (``SamplingParams``), sent the same way.
    """

    model: str = Field(min_length=1, max_length=256)
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)
    stop: StopStr | list[StopStr] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    repetition_penalty: float | None = Field(default=None, ge=1.0, le=2.0)
    prompt_bias: float | None = Field(default=None, ge=0.0, le=10.0)
    no_repeat_ngram: int | None = Field(default=None, ge=0, le=64)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    priority: Literal["online", "batch"] = "online"

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed")
        return stop

    @classmethod
    def parse(cls, body: bytes) -> ChatCompletionRequest:
        """The request in ``body``.

        Raises:
            NodeError: 400 naming the first field at fault (``messages[0].content``).
        """
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = _param(first["loc"])
            where = f"{param}: " if param else ""
            raise NodeError(400, f"{where}{first['msg']}", param=param) from None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def to_generation_request(
        self, *, default_max_tokens: int, max_tokens_limit: int
    ) -> GenerationRequest:
        """The engine's request, with an OpenAI-style id as its request id.

        Raises:
            NodeError: 400 when ``max_tokens`` is above ``max_tokens_limit``.
        """
        param = "max_completion_tokens" if self.max_completion_tokens else "max_tokens"
        max_tokens = self.max_completion_tokens or self.max_tokens or default_max_tokens
        if max_tokens > max_tokens_limit:
            raise NodeError(
                400, f"{param} is {max_tokens}; the limit is {max_tokens_limit}", param=param
            )
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        sampling = SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            # vLLM's -1 and 0 both mean "no top-k".
            top_k=max(self.top_k or 0, 0),
            stop=stop,
            # NOTE: OpenAI takes any 64-bit seed; the engine's generator wants a
            # non-negative one, and folding keeps equal seeds equal.
            seed=None if self.seed is None else self.seed % 2**63,
            repetition_penalty=self.repetition_penalty or 1.0,
            prompt_bias=self.prompt_bias or 0.0,
            no_repeat_ngram=self.no_repeat_ngram or 0,
        )
        return GenerationRequest(
            request_id=f"chatcmpl-{uuid.uuid4().hex}",
            sampling=sampling,
            tenant_id=self.user or "",
            messages=tuple(m.to_message() for m in self.messages),
            priority=Priority(self.priority),
        )


def _param(loc: tuple[int | str, ...]) -> str | None:
    """OpenAI's name of a field (``messages[0].content``), without pydantic's union members."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier() and part not in _NOT_FIELDS:
            path += f".{part}" if path else part
        else:
            break
    return path or None


def same_model(requested: str, served: str) -> bool:
    """Whether ``requested`` names ``served``, case and spacing aside (as API nodes compare)."""
    return "-".join(requested.strip().lower().split()) == served


def openai_finish(reason: FinishReason) -> str:
    return "length" if reason is FinishReason.LENGTH else "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int) -> Usage:
        return cls(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage


class ChunkChoice(BaseModel):
    index: int = 0
    delta: dict[str, str]
    """``{"role": "assistant", "content": ""}`` first, then ``{"content": ...}``, ``{}`` last."""
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None

    def to_sse(self) -> bytes:
        """The chunk as one ``data:`` event (``usage`` only on the chunk that has it)."""
        exclude = {"usage"} if self.usage is None else set()
        return b"data: " + self.model_dump_json(exclude=exclude).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ragserve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
