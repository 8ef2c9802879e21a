"""Turn ``[n]`` markers in an answer into citations of the chunks shown to the model."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.chat.prompt import Source

_MARKER = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_WORD = re.compile(r"[a-z0-9]{4,}")
_MIN_OVERLAP = 0.2


def cite(answer: str, sources: Sequence[Source]) -> list[dict[str, object]]:
    """Citations for ``answer``, in order of first mention.

    Markers that name a real source become citations with ``"kind": "marker"``;
    markers beyond the source list are ignored. When the answer carries no valid
    marker at all, the sources that share enough words with it are cited with
    ``"kind": "overlap"``, so a small model that forgets to cite still points the
    reader at where its answer came from.
    """
    by_number = {s.n: s for s in sources}
    cited: list[dict[str, object]] = []
    seen: set[int] = set()
    for match in _MARKER.finditer(answer):
        for part in match.group(1).split(","):
            n = int(part)
            if n in by_number and n not in seen:
                seen.add(n)
                cited.append(_citation(by_number[n], "marker"))
    if cited:
        return cited
    answer_words = set(_WORD.findall(answer.lower()))
    if not answer_words:
        return []
    for source in sources:
        shared = answer_words & set(_WORD.findall(source.text.lower()))
        if len(shared) / len(answer_words) >= _MIN_OVERLAP:
            cited.append(_citation(source, "overlap"))
    return cited


def _citation(source: Source, kind: str) -> dict[str, object]:
    return {
        "n": source.n,
        "kind": kind,
        "chunk_id": source.chunk_id,
        "document_id": source.document_id,
        "document_name": source.document_name,
        "position": source.position,
    }
