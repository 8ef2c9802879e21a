"""What every in-process engine shares: model limits, chat rendering, request checks, streaming."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inference.errors import InvalidRequestError, ModelLoadError
from inference.sampling import validate_sampling
from inference.types import ChatMessage, FinishEvent, GenerationEvent, GenerationRequest

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Sequence

    from inference.loader import LoadedModel
    from inference.request_slot import RequestSlot


def context_limit(loaded: LoadedModel, max_context_tokens: int | None) -> int:
    """The most tokens (prompt plus ``max_tokens``) one request may take.

    Raises:
        ModelLoadError: Neither the model nor ``max_context_tokens`` gives a limit.
    """
    limit = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 0)
    if max_context_tokens is not None:
        limit = min(limit, max_context_tokens) if limit else max_context_tokens
    if limit <= 0:
        raise ModelLoadError("the model declares no context length; set max_context_tokens")
    return limit


def eos_token_ids(loaded: LoadedModel) -> frozenset[int]:
    """Every id that ends a generation, from the tokenizer and the generation config."""
    eos: set[int] = set()
    for source in (loaded.tokenizer.eos_token_id, loaded.model.generation_config.eos_token_id):
        if isinstance(source, int):
            eos.add(source)
        elif source is not None:
            eos.update(int(i) for i in source)
    return frozenset(eos)


def render_chat(tokenizer: Any, messages: Sequence[ChatMessage]) -> list[int]:
    """Token ids of ``messages`` in the chat template, ending where the reply starts."""
    rendered: Any = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    # NOTE: transformers versions disagree on the return type (list, BatchEncoding,
    # or a batch of one); accept all of them.
    if not isinstance(rendered, list) and hasattr(rendered, "keys"):
        rendered = rendered["input_ids"]
    if hasattr(rendered, "tolist"):
        rendered = rendered.tolist()
    if rendered and isinstance(rendered[0], list):
        rendered = rendered[0]
    return [int(i) for i in rendered]


def check_request(request: GenerationRequest, limit: int) -> None:
    """Reject a request no engine can serve within ``limit`` tokens.

    Raises:
        InvalidRequestError: Bad sampling parameters, an empty prompt, or too long.
    """
    validate_sampling(request.sampling)
    prompt_len = len(request.prompt_token_ids)
    if prompt_len == 0:
        raise InvalidRequestError("the prompt is empty")
    if prompt_len + request.sampling.max_tokens > limit:
        raise InvalidRequestError(
            f"prompt ({prompt_len} tokens) plus max_tokens "
            f"({request.sampling.max_tokens}) exceeds the context limit "
            f"of {limit} tokens"
        )


async def stream_events(
    slot: RequestSlot, cancel: Callable[[RequestSlot], None]
) -> AsyncGenerator[GenerationEvent, None]:
    """Yield ``slot``'s events up to its ``FinishEvent``; ``cancel`` it if closed early."""
    try:
        while True:
            event = await slot.events.get()
            yield event
            if isinstance(event, FinishEvent):
                return
    finally:
        if not slot.finished:
            cancel(slot)
