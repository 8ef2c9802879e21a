"""The OpenAI wire format as RemoteEngine reads it: URLs, bodies, events, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING

import pytest

from inference.errors import EngineOverloadedError, EngineUnavailableError, InvalidRequestError
from inference.remote_wire import (
    Chunk,
    api_root,
    chat_body,
    finish_reason,
    parse_chunk,
    parse_retry_after,
    sse_data,
    status_error,
)
from inference.types import ChatMessage, FinishReason, GenerationRequest, Priority, SamplingParams

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.mark.parametrize(
    "url",
    ["http://node:8001", "http://node:8001/", "http://node:8001/v1", " http://node:8001/v1/ "],
)
def test_base_urls_with_or_without_v1_are_alike(url: str) -> None:
    assert api_root(url) == "http://node:8001"


def test_a_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="not an http"):
        api_root("node:8001")


def test_the_body_sends_only_the_sampling_that_changes_something() -> None:
    chat = (ChatMessage("user", "hi"),)
    plain = chat_body(GenerationRequest("r", messages=chat), "m")
    assert plain["stream"] is True
    assert plain["stream_options"] == {"include_usage": True}
    assert plain["messages"] == [{"role": "user", "content": "hi"}]
    assert not {"top_k", "stop", "seed", "repetition_penalty", "user"} & plain.keys()
    sampling = SamplingParams(
        max_tokens=7, top_k=5, stop=("\n",), seed=3, repetition_penalty=1.2, temperature=0.5
    )
    tuned = chat_body(GenerationRequest("r", sampling=sampling, tenant_id="t", messages=chat), "m")
    assert tuned["max_tokens"] == 7
    assert (tuned["top_k"], tuned["stop"], tuned["seed"]) == (5, ["\n"], 3)
    assert (tuned["repetition_penalty"], tuned["temperature"], tuned["user"]) == (1.2, 0.5, "t")


def test_priority_goes_only_for_batch_requests_to_a_ragserve_node() -> None:
    """Guards foreign servers: vLLM refuses a string ``priority``, so it never gets one."""
    chat = (ChatMessage("user", "hi"),)
    batch = GenerationRequest("r", messages=chat, priority=Priority.BATCH)
    online = GenerationRequest("r", messages=chat)
    assert chat_body(batch, "m", ragserve_node=True)["priority"] == "batch"
    assert "priority" not in chat_body(batch, "m")
    assert "priority" not in chat_body(online, "m", ragserve_node=True)


@pytest.mark.parametrize(("field", "value"), [("prompt_bias", 2.0), ("no_repeat_ngram", 4)])
def test_ragserves_own_sampling_fields_go_only_to_a_ragserve_node(
    field: str, value: object
) -> None:
    chat = (ChatMessage("user", "hi"),)
    tuned = GenerationRequest("r", sampling=SamplingParams(**{field: value}), messages=chat)  # type: ignore[arg-type]
    assert chat_body(tuned, "m", ragserve_node=True)[field] == value
    assert field not in chat_body(tuned, "m")
    plain = GenerationRequest("r", messages=chat)
    assert field not in chat_body(plain, "m", ragserve_node=True)


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_sse_data_joins_lines_and_skips_comments() -> None:
    lines = _lines(
        ": keep-alive", "", "data: a", "", "data:b", "data: c", "", "event: x", "data: d"
    )
    assert [d async for d in sse_data(lines)] == ["a", "b\nc", "d"]


def test_chunks_give_text_finish_and_usage() -> None:
    assert parse_chunk('{"choices":[{"index":0,"delta":{"content":"Hi"}}]}') == Chunk("Hi")
    end = parse_chunk('{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}')
    assert end == Chunk("", "length")
    usage = parse_chunk('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}')
    assert usage.usage == (3, 4)


@pytest.mark.parametrize("data", ["not json", "[1]", '{"error": {"message": "boom"}}'])
def test_malformed_or_error_events_mean_unavailable(data: str) -> None:
    with pytest.raises(EngineUnavailableError):
        parse_chunk(data)


def test_finish_reasons_other_than_length_are_stops() -> None:
    assert finish_reason("length") is FinishReason.LENGTH
    assert finish_reason("stop") is FinishReason.STOP
    assert finish_reason("abort") is FinishReason.STOP
    assert finish_reason(None) is FinishReason.STOP


def test_statuses_map_to_the_router_contract() -> None:
    body = b'{"error": {"message": "queue full"}}'
    overloaded = status_error(429, body, "7", "u")
    assert isinstance(overloaded, EngineOverloadedError)
    assert overloaded.retry_after == 7.0
    assert isinstance(status_error(503, b"", None, "u"), EngineOverloadedError)
    invalid = status_error(400, b'{"error": "prompt too long"}', None, "u")
    assert isinstance(invalid, InvalidRequestError)
    assert str(invalid) == "prompt too long"
    assert isinstance(status_error(401, b"", None, "u"), EngineUnavailableError)
    assert isinstance(status_error(500, b"oops", None, "u"), EngineUnavailableError)


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert parse_retry_after(None) == 1.0
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("soon") == 1.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(later) <= 30
