"""Incremental detokenization and stop strings, with the real SmolLM2 tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inference.detokenizer import IncrementalDetokenizer, OutputStream, StopStringMatcher
from inference.loader import ensure_default_cache

CACHE_DIR = Path(__file__).resolve().parents[3] / ".cache" / "models"
TEXTS = [
    "Hello, world! How are you today?",
    "héllo 世界 🎉 ok — naïve café",
    "def f(x):\n    return x ** 2  # squares\n\n\ttabs",
    "🎉🎉🎉",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    folder, _ = ensure_default_cache(CACHE_DIR)
    return AutoTokenizer.from_pretrained(folder)


def _stream(tokenizer: Any, ids: list[int], prompt: list[int] | None = None) -> list[str]:
    detokenizer = IncrementalDetokenizer(tokenizer, prompt or [])
    pieces = [detokenizer.push(i) for i in ids]
    pieces.append(detokenizer.flush())
    return pieces


@pytest.mark.parametrize("text", TEXTS)
def test_streamed_pieces_add_up_to_the_full_decode(tokenizer: Any, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = _stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids) == text


@pytest.mark.parametrize("text", TEXTS)
def test_no_piece_ends_in_a_partial_character(tokenizer: Any, text: str) -> None:
    """Guards against streaming half of a multi-byte UTF-8 character as U+FFFD."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert all("\ufffd" not in piece for piece in _stream(tokenizer, ids))


def test_multibyte_character_is_held_until_complete(tokenizer: Any) -> None:
    ids = tokenizer.encode("🎉", add_special_tokens=False)
    assert len(ids) > 1, "the emoji must span several tokens for this test to mean anything"
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces = [detokenizer.push(i) for i in ids]
    assert pieces[:-1] == [""] * (len(ids) - 1)
    assert pieces[-1] == "🎉"


def test_flush_emits_an_incomplete_tail_like_a_full_decode(tokenizer: Any) -> None:
    ids = tokenizer.encode("ok 🎉", add_special_tokens=False)[:-1]
    pieces = _stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids)
    assert pieces[-1].endswith("\ufffd")


def test_prompt_context_does_not_leak_into_the_output(tokenizer: Any) -> None:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    ids = tokenizer.encode("Hello! How can I help?", add_special_tokens=False)
    assert "".join(_stream(tokenizer, ids, prompt_ids)) == "Hello! How can I help?"


def test_special_tokens_render_as_nothing(tokenizer: Any) -> None:
    ids = [*tokenizer.encode("a", add_special_tokens=False), tokenizer.eos_token_id]
    assert "".join(_stream(tokenizer, ids)) == "a"


def _feed_all(matcher: StopStringMatcher, chunks: list[str]) -> tuple[str, bool]:
    out = ""
    for chunk in chunks:
        result = matcher.feed(chunk)
        out += result.text
        if result.stopped:
            return out, True
    return out + matcher.flush(), False


def test_without_stop_strings_text_passes_through() -> None:
    matcher = StopStringMatcher(())
    assert matcher.feed("abc").text == "abc"


def test_stop_string_cuts_the_text() -> None:
    assert _feed_all(StopStringMatcher(["END"]), ["hello ", "wor", "ld END more"]) == (
        "hello world ",
        True,
    )


def test_stop_string_split_across_chunks() -> None:
    assert _feed_all(StopStringMatcher(["</answer>"]), ["ok</", "ans", "wer>", "x"]) == (
        "ok",
        True,
    )


def test_only_a_possible_stop_prefix_is_held_back() -> None:
    matcher = StopStringMatcher(["STOP"])
    assert matcher.feed("one ST").text == "one "
    assert matcher.feed("ART").text == "START"


def test_held_tail_is_released_at_the_end() -> None:
    assert _feed_all(StopStringMatcher(["STOP"]), ["abc S", "T"]) == ("abc ST", False)


def test_earliest_of_several_stop_strings_wins() -> None:
    assert _feed_all(StopStringMatcher(["two", "one"]), ["zero one two"]) == ("zero ", True)


def test_nothing_after_a_stop() -> None:
    matcher = StopStringMatcher(["x"])
    assert matcher.feed("ax").stopped
    assert matcher.feed("more").text == ""
    assert matcher.flush() == ""


def test_output_stream_cuts_at_a_stop_string_spanning_tokens(tokenizer: Any) -> None:
    text = "The answer is 42. Sources: none"
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = OutputStream(tokenizer, [], ["Sources:"])
    out, stopped = "", False
    for token in ids:
        result = stream.push(token)
        out += result.text
        if result.stopped:
            stopped = True
            break
    assert (out, stopped) == ("The answer is 42. ", True)


def test_output_stream_finish_releases_the_rest(tokenizer: Any) -> None:
    ids = tokenizer.encode("abc S", add_special_tokens=False)
    stream = OutputStream(tokenizer, [], ["STOP"])
    out = "".join(stream.push(token).text for token in ids)
    assert out + stream.finish() == "abc S"
