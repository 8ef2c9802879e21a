"""OpenAI's wire models for chat completions, embeddings and models, with their conversions.

Requests ignore fields they do not know (as OpenAI does) but check the types of
those they know, so a wrong type is a 400 naming the field. ragserve's extension
fields (``conversation_id``, ``retrieval`` and, in answers, ``message_id``,
``sources``, ``citations``) are documented in ``docs/openai-api.md``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from app.chat.turn import TurnOptions, TurnRequest
from app.core.errors import BadRequestError, field_param
from app.entrypoints.schemas import LABEL_PATTERN, integral
from inference import ChatMessage

if TYPE_CHECKING:
    from conversation import MessageInfo

MAX_MESSAGES = 256
"""Messages one chat completion request may carry."""
MAX_STOP = 4
"""Stop sequences per request, as OpenAI allows."""

_HISTORY_ROLES = ("user", "assistant")
_INSTRUCTION_ROLES = ("system", "developer")


class WireModel(BaseModel):
    """A request body part: unknown fields are ignored, known ones are type-checked."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _integral(cls, value: Any, info: ValidationInfo) -> Any:
        """``42.0`` is ``42`` for an integer field, as OpenAI and JSON Schema take it."""
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else integral(field.annotation, value)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        # NOTE: Litestar validates bodies with ``strict=False``, which would overrule
        # the ``Strict*`` fields and take ``"10"`` for ``max_tokens``; OpenAI says 400.
        kwargs.pop("strict", None)
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            # NOTE: raised here, not left to Litestar: Litestar takes an error on a
            # body field named like one of the handler's dependencies (``retrieval``)
            # for a failed dependency, and answers 500.
            errors = exc.errors(include_url=False, include_input=False)
            detail = "; ".join(f"{field_param(e['loc']) or 'body'}: {e['msg']}" for e in errors)
            raise BadRequestError(
                f"Invalid request body ({detail})", param=field_param(errors[0]["loc"])
            ) from exc


class ContentPart(WireModel):
    """One part of a message's content; only ``{"type": "text"}`` parts are served."""

    type: StrictStr
    text: StrictStr | None = None


class ChatMessageIn(WireModel):
    """A message of the request's ``messages``."""

    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None

    def text(self, index: int) -> str:
        """The message's text; raises ``BadRequestError`` on a part that is not text."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        texts = []
        for j, part in enumerate(self.content):
            if part.type != "text" or part.text is None:
                field = "type" if part.type != "text" else "text"
                raise BadRequestError(
                    f"Content parts of type {part.type!r} are not supported; send "
                    "{'type': 'text', 'text': ...} parts.",
                    param=f"messages[{index}].content[{j}].{field}",
                )
            texts.append(part.text)
        return "\n".join(texts)


class StreamOptions(WireModel):
    include_usage: StrictBool = False
    """Send a last chunk, with empty ``choices``, carrying the turn's ``usage``."""


class RetrievalOptions(WireModel):
    """ragserve extension: how the turn retrieves the tenant's documents."""

    enabled: StrictBool = True
    """``false`` answers without retrieval (no sources)."""
    k: StrictInt | None = Field(default=None, ge=1, le=20)
    """Chunks to retrieve; default the server's ``RAGSERVE_RETRIEVAL_TOP_K``."""
    collection: StrictStr | None = Field(
        default=None, min_length=1, max_length=128, pattern=LABEL_PATTERN
    )
    """Search only this collection of the tenant's documents."""
    score_floor: StrictFloat | None = Field(default=None, ge=-1.0, le=1.0)
    """Drop chunks whose cosine similarity is below this."""


StopStr = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class ChatCompletionRequest(WireModel):
    """``POST /v1/chat/completions``."""

    model: StrictStr = Field(min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=2.0)
    top_p: StrictFloat | None = Field(default=None, gt=0.0, le=1.0)
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: StopStr | Annotated[list[StopStr], Field(max_length=MAX_STOP)] | None = None
    n: StrictInt = Field(default=1, json_schema_extra={"const": 1})
    """Choices to generate: only one is served (the schema says so)."""
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = Field(default=None, max_length=256)
    logprobs: StrictBool | None = Field(default=None, json_schema_extra={"enum": [False, None]})
    """Not served: only ``false`` or ``null`` (the schema says so)."""
    conversation_id: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    """ragserve extension: continue this stored conversation of the caller's tenant."""
    retrieval: RetrievalOptions | None = None
    """ragserve extension: retrieval options."""

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, logprobs: bool | None) -> bool | None:
        if logprobs:
            raise ValueError("logprobs are not supported")
        return logprobs

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def to_turn_request(
        self,
        tenant_id: str,
        subject: str | None,
        *,
        max_tokens_limit: int,
        max_message_chars: int,
    ) -> TurnRequest:
        """The pipeline's turn: the last user message is the question.

        Without ``conversation_id`` the earlier user and assistant messages are the
        history; with it, the stored conversation's turns are. System and developer
        messages become the caller's instructions either way.

        Raises:
            BadRequestError: What a schema cannot say: the last message is not the
                user's, a non-text part, an empty or overlong question, too many tokens.
        """
        texts = [m.text(i) for i, m in enumerate(self.messages)]
        last = max(
            (i for i, m in enumerate(self.messages) if m.role not in _INSTRUCTION_ROLES),
            default=None,
        )
        if last is None or self.messages[last].role != "user":
            raise BadRequestError(
                "The last non-system message must be the user's: it is the question.",
                param="messages",
            )
        question = texts[last]
        if not question.strip():
            raise BadRequestError("The user message is empty.", param=f"messages[{last}].content")
        if len(question) > max_message_chars:
            raise BadRequestError(
                f"The user message has {len(question)} characters; the limit is "
                f"{max_message_chars}.",
                param=f"messages[{last}].content",
            )
        param = "max_completion_tokens" if self.max_completion_tokens else "max_tokens"
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise BadRequestError(
                f"{param} is {max_tokens}; the limit is {max_tokens_limit}.", param=param
            )
        instructions = "\n\n".join(
            t.strip()
            for m, t in zip(self.messages, texts, strict=True)
            if m.role in _INSTRUCTION_ROLES and t.strip()
        )
        history = tuple(
            ChatMessage(m.role, t)
            for m, t in zip(self.messages[:last], texts[:last], strict=True)
            if m.role in _HISTORY_ROLES and t.strip()
        )
        return TurnRequest(
            tenant_id=tenant_id,
            conversation_id=self.conversation_id,
            content=question,
            options=self._options(max_tokens),
            subject=subject,
            history=None if self.conversation_id else history,
            instructions=instructions or None,
            model=self.model,
        )

    def _options(self, max_tokens: int | None) -> TurnOptions:
        retrieval = self.retrieval or RetrievalOptions()
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return TurnOptions(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            # NOTE: OpenAI takes any 64-bit seed; the engine's generator wants a
            # non-negative one, and folding keeps equal seeds equal.
            seed=None if self.seed is None else self.seed % 2**63,
            stop=stop,
            retrieval_k=retrieval.k if retrieval.enabled else 0,
            collection=retrieval.collection,
            score_floor=retrieval.score_floor,
        )


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, usage: dict[str, int]) -> Usage:
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        return cls(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )


class CacheInfo(BaseModel):
    """ragserve's extension: the answer came from the response cache, not the model."""

    kind: Literal["exact", "semantic"]
    similarity: float
    """1.0 for an exact hit; the cosine of the two questions for a semantic one."""
    cached_from: str
    """The message id of the answer it copies."""

    @classmethod
    def of(cls, usage: dict[str, Any]) -> CacheInfo | None:
        if not usage.get("cached"):
            return None
        return cls(
            kind=usage["cache_kind"],
            similarity=usage["cache_similarity"],
            cached_from=usage["cached_from"],
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A non-streamed answer, with ragserve's extension fields."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    conversation_id: str
    message_id: str
    sources: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    citations_dropped: int = 0
    """``[n]`` markers left out because their chunk does not support their sentence."""
    cached: CacheInfo | None = None

    @classmethod
    def of(cls, message: MessageInfo, model: str, created: int) -> ChatCompletion:
        """The stored answer ``message`` as OpenAI's ``chat.completion``."""
        return cls(
            id=completion_id(message.id),
            created=created,
            model=model,
            choices=[
                Choice(
                    message=AssistantMessage(content=message.content),
                    finish_reason=to_openai_finish(message.finish_reason),
                )
            ],
            usage=Usage.of(message.usage),
            conversation_id=message.conversation_id,
            message_id=message.id,
            sources=list(message.sources),
            citations=list(message.citations),
            citations_dropped=int(message.usage.get("citations_dropped", 0)),
            cached=CacheInfo.of(message.usage),
        )


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


_OPTIONAL_CHUNK_FIELDS = ("usage", "sources", "citations", "citations_dropped", "cached")


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer.

    ``conversation_id`` and ``message_id`` ride on every chunk, ``sources`` on the
    first (the one with the role), ``citations`` and ``citations_dropped`` (and
    ``cached``, for an answer from the response cache) on the one with the finish
    reason.
    """

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    conversation_id: str
    message_id: str
    sources: list[dict[str, Any]] | None = None
    citations: list[dict[str, Any]] | None = None
    citations_dropped: int | None = None
    cached: CacheInfo | None = None

    def to_sse(self) -> bytes:
        """The chunk as one ``data:`` event; absent extras are left out, not ``null``."""
        absent = {name for name in _OPTIONAL_CHUNK_FIELDS if getattr(self, name) is None}
        return b"data: " + self.model_dump_json(exclude=absent).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def completion_id(message_id: str) -> str:
    """OpenAI-style id of the completion that is stored as message ``message_id``."""
    return f"chatcmpl-{uuid.UUID(message_id).hex}" if _is_uuid(message_id) else message_id


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def to_openai_finish(finish_reason: str | None) -> str:
    """OpenAI's finish reason for a stored one (``cancelled`` is a ``stop``)."""
    return finish_reason if finish_reason in ("stop", "length", "content_filter") else "stop"
