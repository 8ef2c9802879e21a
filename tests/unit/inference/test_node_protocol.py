"""The inference node's request model: the ``priority``, ``prompt_bias`` and
``no_repeat_ngram`` fields it adds to OpenAI's."""

from __future__ import annotations

import json

import pytest

from inference.node.errors import NodeError
from inference.node.protocol import ChatCompletionRequest
from inference.types import Priority


def _parse(**fields: object) -> ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatCompletionRequest.parse(json.dumps(body).encode())


def _priority(request: ChatCompletionRequest) -> Priority:
    return request.to_generation_request(default_max_tokens=8, max_tokens_limit=16).priority


def test_priority_defaults_to_online_and_batch_reaches_the_engine() -> None:
    assert _priority(_parse()) is Priority.ONLINE
    assert _priority(_parse(priority="online")) is Priority.ONLINE
    assert _priority(_parse(priority="batch")) is Priority.BATCH


@pytest.mark.parametrize("value", ["urgent", "BATCH", 1, None])
def test_a_bad_priority_is_a_400_naming_the_field(value: object) -> None:
    with pytest.raises(NodeError) as info:
        _parse(priority=value)
    assert info.value.status == 400
    assert info.value.param == "priority"
    assert "'online' or 'batch'" in info.value.message


@pytest.mark.parametrize(
    ("field", "value", "bad"),
    [("prompt_bias", 2.5, (-1.0, 11.0, "high")), ("no_repeat_ngram", 4, (-1, 65, "four"))],
)
def test_ragserves_sampling_fields_reach_the_engine_and_out_of_range_is_a_400(
    field: str, value: object, bad: tuple[object, ...]
) -> None:
    def sampled(request: ChatCompletionRequest) -> object:
        made = request.to_generation_request(default_max_tokens=8, max_tokens_limit=16)
        return getattr(made.sampling, field)

    assert sampled(_parse()) == 0
    assert sampled(_parse(**{field: value})) == value
    for wrong in bad:
        with pytest.raises(NodeError) as info:
            _parse(**{field: wrong})
        assert info.value.status == 400
        assert info.value.param == field
