"""Cheap input checks: size and characters, and a tenant's blocked topics."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

import numpy as np

from safety.normalize import fold

if TYPE_CHECKING:
    from safety.policy import BlockedTopic
    from safety.types import TextEmbedder

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def size_and_characters(text: str, max_chars: int) -> str | None:
    """Why ``text`` is unacceptable (too long, control characters, no text), or ``None``."""
    if len(text) > max_chars:
        return f"length {len(text)} over {max_chars}"
    controls = sum(
        1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS
    )
    if controls:
        return f"{controls} control characters"
    unassigned = sum(1 for ch in text if unicodedata.category(ch) in ("Cn", "Co", "Cs"))
    if unassigned:
        return f"{unassigned} unassigned or private-use characters"
    return None


class TopicMatcher:
    """Matches text against blocked topics by keyword and, with an embedder, by meaning."""

    def __init__(self, topics: tuple[BlockedTopic, ...], embedder: TextEmbedder | None) -> None:
        self._topics = topics
        self._keywords = [
            re.compile(r"\b(?:" + "|".join(re.escape(fold(k)[0]) for k in t.keywords) + r")\b")
            if t.keywords
            else None
            for t in topics
        ]
        self._embedder = embedder
        self._examples: list[np.ndarray | None] = [
            np.asarray(embedder.embed_documents(list(t.examples)), dtype=np.float32)
            if embedder is not None and t.examples
            else None
            for t in topics
        ]

    def match(self, text: str) -> tuple[str, float] | None:
        """The first topic ``text`` is about, with a score, or ``None``."""
        folded = fold(text)[0]
        query: np.ndarray | None = None
        for topic, keywords, examples in zip(
            self._topics, self._keywords, self._examples, strict=True
        ):
            if keywords is not None and keywords.search(folded):
                return topic.name, 1.0
            if examples is not None and self._embedder is not None:
                if query is None:
                    query = np.asarray(self._embedder.embed_query(text), dtype=np.float32)
                best = float((examples @ query).max())
                if best >= topic.threshold:
                    return topic.name, best
        return None
