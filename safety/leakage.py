"""Detect an answer reproducing the system prompt.

Word n-grams of the (normalised) system prompt are hashed once; the answer's
n-grams are checked as words arrive. ``n`` words in a row from the prompt count
as a leak: long enough that ordinary phrases ("if you do not know the answer")
rarely match by chance, short enough to catch a paraphrase that keeps a clause.
"""

from __future__ import annotations

import re

from safety.normalize import fold

_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(text)[0])


class LeakDetector:
    """Counts answer n-grams that occur in the system prompt, incrementally."""

    def __init__(self, system_prompt: str, n: int = 8) -> None:
        self._n = n
        words = _words(system_prompt)
        self._grams = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
        self._tail: list[str] = []
        self._pending = ""
        self.hits = 0

    @property
    def active(self) -> bool:
        return bool(self._grams)

    def feed(self, text: str) -> int:
        """Take released answer text; returns the leaked n-grams so far."""
        if not self._grams:
            return 0
        self._pending += text
        # Only whole words: the last one may still grow.
        cut = max(self._pending.rfind(" "), self._pending.rfind("\n"))
        if cut < 0:
            return self.hits
        complete, self._pending = self._pending[:cut], self._pending[cut:]
        for word in _words(complete):
            self._tail.append(word)
            if len(self._tail) > self._n:
                self._tail.pop(0)
            if len(self._tail) == self._n and tuple(self._tail) in self._grams:
                self.hits += 1
        return self.hits

    def finish(self) -> int:
        self.feed(self._pending + " ")
        self._pending = ""
        return self.hits
