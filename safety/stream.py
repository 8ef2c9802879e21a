"""Apply rewrite rules to a text that arrives in pieces, as it arrives.

``StreamRedactor`` holds back only the tail that a later character could still
turn into (or out of) a match: the word being typed, a digit run that may grow
into a card number, a ``-----BEGIN ... PRIVATE KEY-----`` block until its end.
Everything before that tail is rewritten and released at once, and the
concatenation of all releases equals ``RuleSet.apply`` on the whole text.
"""

from __future__ import annotations

from collections import Counter

from safety.rules import RuleSet, rewrite

# Characters of already-released text kept for look-behinds and \b.
_CONTEXT = 64


class StreamRedactor:
    """Rewrites a stream of text pieces with a ``RuleSet``.

    Args:
        rules: What to rewrite (PII, markup, or both in one set).
        max_hold: Characters it may hold before releasing regardless; bounds the
            latency an unterminated candidate (an opened key block) can cause.
            Past it the stream may differ from the whole-text rewrite.
    """

    def __init__(self, rules: RuleSet, max_hold: int = 16_384) -> None:
        self._rules = rules
        self._max_hold = max_hold
        self._buffer = ""  # context + pending
        self._start = 0  # where pending begins in _buffer
        self.counts: Counter[str] = Counter()
        """Accepted spans so far, by rule name."""

    @property
    def held(self) -> int:
        """Characters received but not yet released."""
        return len(self._buffer) - self._start

    def feed(self, piece: str) -> str:
        """Take the next piece; return the text now safe to release (maybe empty)."""
        self._buffer += piece
        cut = self._rules.settled(self._buffer, self._start)
        if len(self._buffer) - cut > self._max_hold:
            cut = len(self._buffer) - self._max_hold
        return self._release(cut)

    def flush(self) -> str:
        """The stream ended: rewrite and return everything still held."""
        return self._release(len(self._buffer))

    def _release(self, cut: int) -> str:
        if cut <= self._start:
            return ""
        hits = [h for h in self._rules.hits(self._buffer, self._start) if h.end <= cut]
        out = rewrite(self._buffer, hits, self._start, cut)
        self.counts.update(h.rule.name for h in hits)
        keep_from = max(0, cut - _CONTEXT)
        self._buffer = self._buffer[keep_from:]
        self._start = cut - keep_from
        return out
