"""How a turn's sampling is decided: the client's options within the node's limits,
then within the limits of the model version that answers."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from app.core.errors import UnprocessableError
from inference import SamplingParams

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.chat.prompt import Source
    from app.chat.turn import PipelineConfig, TurnOptions, TurnRequest
    from app.routing.specs import VersionSpec

__all__ = ["turn_sampling", "with_sources", "within_version"]


def turn_sampling(request: TurnRequest, cfg: PipelineConfig) -> SamplingParams:
    """Check a turn before anything is stored; raises ``UnprocessableError``."""
    opts = request.options
    if not request.content.strip():
        raise UnprocessableError("The message is empty.")
    if len(request.content) > cfg.max_message_chars:
        raise UnprocessableError(
            f"The message has {len(request.content)} characters; the limit is "
            f"{cfg.max_message_chars}."
        )
    max_tokens = opts.max_tokens or cfg.default_max_tokens
    if max_tokens > cfg.max_tokens_limit:
        raise UnprocessableError(
            f"max_tokens is {max_tokens}; the limit is {cfg.max_tokens_limit}."
        )
    temperature = cfg.temperature if opts.temperature is None else opts.temperature
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=1.0 if opts.top_p is None else opts.top_p,
        stop=opts.stop,
        seed=opts.seed,
        repetition_penalty=(
            cfg.repetition_penalty if opts.repetition_penalty is None else opts.repetition_penalty
        ),
        no_repeat_ngram=cfg.no_repeat_ngram,
    )


def within_version(
    version: VersionSpec, opts: TurnOptions, sampling: SamplingParams
) -> SamplingParams:
    """``sampling`` under ``version``'s defaults (where the client set nothing) and
    limits (a client's ``max_tokens`` above the version's limit is a 422)."""
    defaults = version.sampling
    max_tokens = sampling.max_tokens
    if opts.max_tokens is None and defaults.max_tokens is not None:
        max_tokens = defaults.max_tokens
    if defaults.max_tokens_limit is not None and max_tokens > defaults.max_tokens_limit:
        if opts.max_tokens is not None:
            raise UnprocessableError(
                f"max_tokens is {max_tokens}; {version.key} allows at most "
                f"{defaults.max_tokens_limit}."
            )
        max_tokens = defaults.max_tokens_limit
    temperature = sampling.temperature
    if opts.temperature is None and defaults.temperature is not None:
        temperature = defaults.temperature
    return replace(sampling, max_tokens=max_tokens, temperature=temperature)


def with_sources(
    sampling: SamplingParams, sources: Sequence[Source], cfg: PipelineConfig
) -> SamplingParams:
    """``sampling`` with the configured ``prompt_bias`` where the prompt holds
    sources: the answer leans toward their words (none without sources)."""
    if not sources or not cfg.prompt_bias:
        return sampling
    return replace(sampling, prompt_bias=cfg.prompt_bias)
