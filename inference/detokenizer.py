"""Turn a growing list of token ids into text deltas, and cut the text at stop strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

_REPLACEMENT = "\ufffd"
# How many prompt tokens to decode as context for the first generated ones: some
# tokenizers (SentencePiece) render a token differently at the start of a text.
_CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    """Decode token ids one at a time, emitting only text that can no longer change.

    It decodes a sliding window (a few already-emitted tokens plus the new ones)
    rather than the whole sequence, so each step costs the same however long the
    answer grows. Text ending in an incomplete UTF-8 character (decoded as
    U+FFFD) is held back until the next token completes it.

    Args:
        tokenizer: A Hugging Face tokenizer.
        prompt_token_ids: The prompt; its last tokens give the first generated
            token its context.
        skip_special_tokens: Render special tokens (``<|im_start|>`` etc.) as nothing.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_token_ids: Sequence[int] = (),
        skip_special_tokens: bool = True,
    ) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._ids: list[int] = list(prompt_token_ids[-_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def _decode(self, ids: Sequence[int]) -> str:
        text: str = self._tokenizer.decode(
            list(ids),
            skip_special_tokens=self._skip_special,
            clean_up_tokenization_spaces=False,
        )
        return text

    def push(self, token_id: int) -> str:
        """Add one generated token; return the newly stable text (possibly empty)."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Return whatever is still held back, at the end of the sequence.

        NOTE: an incomplete UTF-8 character at the very end can never be completed,
        so it is emitted as U+FFFD, exactly as decoding the whole sequence would.
        """
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        if len(new_text) <= len(prefix_text):
            return ""
        if new_text.endswith(_REPLACEMENT) and not final:
            return ""
        delta = new_text[len(prefix_text) :]
        # The tokens just emitted become the context of the next decode.
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return delta


@dataclass(frozen=True, slots=True)
class StopResult:
    """What ``StopStringMatcher.feed`` lets through.

    Attributes:
        text: Text safe to emit now (possibly empty).
        stopped: A stop string appeared; ``text`` is everything before it and the
            request must end.
    """

    text: str
    stopped: bool


class StopStringMatcher:
    """Cut streamed text at the first stop string.

    Only the tail of the text that could still grow into a stop string is held
    back; everything before it is released at once, so streaming stays smooth.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(s for s in stop if s)
        self._pending = ""
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether a stop string has been seen."""
        return self._stopped

    def feed(self, text: str) -> StopResult:
        """Add ``text``; return what may be emitted and whether a stop string appeared."""
        if self._stopped:
            return StopResult("", True)
        if not self._stop:
            return StopResult(text, False)
        pending = self._pending + text
        cut = _first_stop(pending, self._stop)
        if cut is not None:
            self._pending = ""
            self._stopped = True
            return StopResult(pending[:cut], True)
        keep = _partial_stop_start(pending, self._stop)
        self._pending = pending[keep:]
        return StopResult(pending[:keep], False)

    def flush(self) -> str:
        """Release the held-back tail when the sequence ends for another reason."""
        held, self._pending = self._pending, ""
        return "" if self._stopped else held


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in ``text``, if any."""
    positions = [pos for pos in (text.find(s) for s in stops) if pos >= 0]
    return min(positions) if positions else None


def _partial_stop_start(text: str, stops: Sequence[str]) -> int:
    """Start of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    longest = max(len(s) for s in stops) - 1
    for start in range(max(0, len(text) - longest), len(text)):
        tail = text[start:]
        if any(s.startswith(tail) for s in stops):
            return start
    return len(text)


class OutputStream:
    """Detokenizer and stop-string matcher together: token ids in, text deltas out.

    Args:
        tokenizer: A Hugging Face tokenizer.
        prompt_token_ids: The prompt, for the detokenizer's context.
        stop: Stop strings; never part of the output.
    """

    def __init__(self, tokenizer: Any, prompt_token_ids: Sequence[int], stop: Sequence[str]):
        self._detokenizer = IncrementalDetokenizer(tokenizer, prompt_token_ids)
        self._matcher = StopStringMatcher(stop)

    def push(self, token_id: int) -> StopResult:
        """Add one generated token; return the text to emit and whether to stop."""
        return self._matcher.feed(self._detokenizer.push(token_id))

    def finish(self) -> str:
        """At the end of the sequence (not by stop string): the held-back text.

        NOTE: a stop string completed by this last text still cuts it.
        """
        result = self._matcher.feed(self._detokenizer.flush())
        return result.text if result.stopped else result.text + self._matcher.flush()
