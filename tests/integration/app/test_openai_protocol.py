"""The OpenAI wire models: requests become the right turns, answers parse in the SDK.

No model is loaded: these run the protocol's conversions, the app's error mapping
on a small Litestar app, and the official ``openai`` SDK's own response types.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import openai.types.chat as sdk_chat
import pytest
from litestar import post
from litestar.testing import create_test_client
from openai.types import CreateEmbeddingResponse

from app.core.errors import BadRequestError, error_response, field_param
from app.entrypoints.openai.embeddings import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from app.entrypoints.openai.protocol import (
    SSE_DONE,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
    Usage,
)
from app.entrypoints.openai.serving import _base64
from app.routing.specs import served_id
from conversation import MessageInfo
from inference import ChatMessage

LIMITS = {"max_tokens_limit": 1024, "max_message_chars": 100}


def _request(**fields: Any) -> ChatCompletionRequest:
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi"}]}
    return ChatCompletionRequest.model_validate({**body, **fields})


def test_messages_become_instructions_history_and_the_question() -> None:
    request = _request(
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "text", "text": "Who built"},
                                         {"type": "text", "text": "it?"}]},
            {"role": "assistant", "content": "Mira Okafor."},
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "When?"},
        ],
        max_completion_tokens=12,
        max_tokens=999,
        stop="END",
        seed=-1,
        temperature=0.5,
        retrieval={"k": 2, "collection": "manuals", "score_floor": 0.3},
    )  # fmt: skip
    turn = request.to_turn_request("tenant-1", "key:abc", **LIMITS)
    assert turn.tenant_id == "tenant-1"
    assert turn.subject == "key:abc"
    assert turn.conversation_id is None
    assert turn.content == "When?"
    assert turn.instructions == "Answer in French.\n\nBe brief."
    assert turn.history == (
        ChatMessage("user", "Who built\nit?"),
        ChatMessage("assistant", "Mira Okafor."),
    )
    opts = turn.options
    assert opts.max_tokens == 12  # max_completion_tokens wins over the deprecated max_tokens
    assert opts.stop == ("END",)
    assert opts.seed == 2**63 - 1  # folded into the engine's range, deterministically
    assert opts.temperature == 0.5
    assert (opts.retrieval_k, opts.collection, opts.score_floor) == (2, "manuals", 0.3)


def test_a_conversation_id_uses_the_stored_history_and_retrieval_can_be_off() -> None:
    request = _request(
        conversation_id="c-1",
        messages=[
            {"role": "user", "content": "ignored earlier turn"},
            {"role": "assistant", "content": "ignored"},
            {"role": "user", "content": "Next question"},
        ],
        retrieval={"enabled": False},
    )
    turn = request.to_turn_request("t", None, **LIMITS)
    assert (turn.conversation_id, turn.content, turn.history) == ("c-1", "Next question", None)
    assert turn.options.retrieval_k == 0
    assert turn.options.max_tokens is None  # the server's default applies


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
         "messages"),
        ({"messages": [{"role": "system", "content": "Only rules"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x" * 101}]}, "messages[0].content"),
        ({"max_tokens": 1025}, "max_tokens"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),
    ],
)  # fmt: skip
def test_what_a_schema_cannot_say_is_a_bad_request_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        _request(**fields).to_turn_request("t", None, **LIMITS)
    assert caught.value.status_code == 400
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"n": 2}, ("n",)),
        ({"temperature": "hot"}, ("temperature",)),
        ({"max_tokens": "10"}, ("max_tokens",)),
        ({"stop": ["a", "b", "c", "d", "e"]}, ("stop",)),
        ({"logprobs": True}, ("logprobs",)),
        ({"messages": [{"role": "tool", "content": "x"}]}, ("messages", 0, "role")),
        ({"messages": []}, ("messages",)),
    ],
)
def test_unsupported_values_and_wrong_types_are_refused(
    fields: dict[str, Any], loc: tuple[object, ...]
) -> None:
    # A bad body is a 400 in OpenAI's shape (see WireModel), naming the field.
    with pytest.raises(BadRequestError) as caught:
        _request(**fields)
    assert caught.value.param == field_param(loc)


def test_unknown_fields_are_ignored_like_openai_does() -> None:
    request = _request(
        frequency_penalty=0.5, tools=[], stream_options={"include_usage": True, "x": 1}
    )
    assert request.include_usage
    assert not hasattr(request, "frequency_penalty")


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "input": ""},
        {"model": "m", "input": []},
        {"model": "m", "input": ["a"] * 257},
        {"model": "m", "input": [1, 2, 3]},
        {"model": "m", "input": "x", "encoding_format": "hex"},
    ],
)
def test_embedding_requests_are_bounded(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        EmbeddingRequest.model_validate(body)


def test_embedding_inputs_as_one_text_or_a_batch() -> None:
    assert EmbeddingRequest.model_validate({"model": "m", "input": "a"}).texts == ["a"]
    assert EmbeddingRequest.model_validate({"model": "m", "input": ["a", "b"]}).texts == ["a", "b"]


def _stored_answer() -> MessageInfo:
    return MessageInfo(
        id="0d7f4f4e-59c4-4a8e-9d7c-1f2e3d4c5b6a",
        conversation_id="conv-1",
        tenant_id="t",
        role="assistant",
        content="It runs on helium-3 [1].",
        status="cancelled",
        finish_reason="cancelled",
        model="SmolLM2-135M-Instruct",
        model_version="v",
        sources=[{"n": 1, "document_name": "zorblax.md"}],
        citations=[{"n": 1, "document_id": "d"}],
        usage={"prompt_tokens": 90, "completion_tokens": 7, "citations_dropped": 2},
        timings={},
        error=None,
        created_at=datetime.now(UTC),
    )


def test_a_stored_answer_is_a_chat_completion_the_sdk_parses() -> None:
    """Guards the wire shape: the SDK's own (strict) model must accept what we send."""
    completion = ChatCompletion.of(_stored_answer(), "smollm2-135m-instruct", 1700000000)
    wire = json.loads(completion.model_dump_json())
    parsed = sdk_chat.ChatCompletion.model_validate(wire)
    assert parsed.id == "chatcmpl-0d7f4f4e59c44a8e9d7c1f2e3d4c5b6a"
    assert parsed.choices[0].message.content == "It runs on helium-3 [1]."
    assert parsed.choices[0].finish_reason == "stop"  # a cancelled turn is OpenAI's "stop"
    assert parsed.usage is not None
    assert parsed.usage.total_tokens == 97
    assert (wire["conversation_id"], wire["message_id"]) == ("conv-1", _stored_answer().id)
    assert wire["sources"][0]["document_name"] == "zorblax.md"
    assert wire["citations_dropped"] == 2


def test_chunks_are_sse_events_the_sdk_parses_without_absent_extras() -> None:
    common = {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "conversation_id": "c",
        "message_id": "m1",
    }
    first = ChatCompletionChunk(
        **common, choices=[ChunkChoice(delta=Delta(role="assistant", content=""))], sources=[]
    ).to_sse()
    usage = ChatCompletionChunk(**common, choices=[], usage=Usage.of({"prompt_tokens": 3})).to_sse()
    for event in (first, usage):
        assert event.startswith(b"data: ")
        assert event.endswith(b"\n\n")
        wire = json.loads(event[len(b"data: ") :])
        sdk_chat.ChatCompletionChunk.model_validate(wire)
        assert "citations" not in wire
        assert "citations_dropped" not in wire
    assert json.loads(first[6:])["sources"] == []
    assert "usage" not in json.loads(first[6:])
    assert json.loads(usage[6:])["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 0,
        "total_tokens": 3,
    }
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_base64_embeddings_decode_as_the_sdk_decodes_them() -> None:
    vector = [0.25, -0.5, 0.125]
    response = EmbeddingResponse(
        data=[EmbeddingData(index=0, embedding=_base64(vector))],
        model="all-minilm-l6-v2",
        usage=EmbeddingUsage(prompt_tokens=1, total_tokens=1),
    )
    wire = json.loads(response.model_dump_json())
    raw = base64.b64decode(wire["data"][0]["embedding"])  # what the SDK does before parsing
    assert np.frombuffer(raw, dtype="float32").tolist() == vector
    wire["data"][0]["embedding"] = vector
    CreateEmbeddingResponse.model_validate(wire)


def test_served_ids_are_stable_and_lower_case() -> None:
    assert served_id("SmolLM2-135M-Instruct") == "smollm2-135m-instruct"
    assert served_id(" My Model ") == "my-model"


@post("/v1/chat/completions")
async def _chat(data: ChatCompletionRequest) -> dict[str, str]:
    return {"model": data.model}


@post("/v1/conversations")
async def _other(data: ChatCompletionRequest) -> dict[str, str]:
    return {"model": data.model}


def test_errors_take_openai_shape_on_openai_routes_only() -> None:
    """Guards the per-route error mapping (``app.core.errors.error_response``)."""
    bad = {"model": "m", "messages": [{"role": "user", "content": 5}], "temperature": 0}
    with create_test_client([_chat, _other], exception_handlers={Exception: error_response}) as c:
        openai_error = c.post("/v1/chat/completions", json=bad)
        ours = c.post("/v1/conversations", json=bad)
        not_json = c.post(
            "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert openai_error.status_code == 400
    error = openai_error.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[0].content"
    assert ours.status_code == 400
    assert set(ours.json()["error"]) == {"code", "message"}
    assert not_json.status_code == 400
    assert set(not_json.json()["error"]) == {"message", "type", "param", "code"}
