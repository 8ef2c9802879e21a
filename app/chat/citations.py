"""Turn ``[n]`` markers in an answer into citations of the chunks shown to the model.

Each citation carries its ``support``: the sentence of the cited chunk that shares
the most words with the claim it is attached to (the answer's sentence holding the
marker), as character offsets into the chunk's text, and the share of the claim's
words found there. A frontend highlights the span; a low score marks a citation the
chunk may not support (it is kept: the cut-off is to be calibrated on labelled
pairs, issue 11).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.chat.prompt import Source

_MARKER = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_WORD = re.compile(r"[a-z0-9]{4,}")
_MIN_OVERLAP = 0.2
# A sentence: up to and including its end mark, or to a line break or the end.
_SENTENCE = re.compile(r"[^\s][^.!?\n]*(?:[.!?]+|$)", re.MULTILINE)


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
        claim = _claim(answer, match.start())
        for part in match.group(1).split(","):
            n = int(part)
            if n in by_number and n not in seen:
                seen.add(n)
                cited.append(_citation(by_number[n], "marker", claim))
    if cited:
        return cited
    answer_words = _words(answer)
    if not answer_words:
        return []
    for source in sources:
        shared = answer_words & _words(source.text)
        if len(shared) / len(answer_words) >= _MIN_OVERLAP:
            cited.append(_citation(source, "overlap", _MARKER.sub("", answer)))
    return cited


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _claim(answer: str, marker_at: int) -> str:
    """The answer's sentence a marker at ``marker_at`` belongs to, markers removed: the
    one it ends, or (a marker opening a sentence, "... valleys. [1]") the one before."""
    before = answer[:marker_at].rstrip()
    ends = [m.end() for m in re.finditer(r"[.!?\n]", before[:-1])]
    start = ends[-1] if ends else 0
    return _MARKER.sub("", before[start:]).strip()


def support(claim: str, text: str) -> dict[str, object] | None:
    """The sentence of ``text`` that shares the most words with ``claim``: its
    character offsets and the share of the claim's words it holds; ``None`` when
    no word is shared."""
    wanted = _words(claim)
    if not wanted:
        return None
    best: tuple[float, int, int] | None = None
    for sentence in _SENTENCE.finditer(text):
        score = len(wanted & _words(sentence.group())) / len(wanted)
        if score > 0 and (best is None or score > best[0]):
            best = (score, sentence.start(), sentence.end())
    if best is None:
        return None
    return {"start": best[1], "end": best[2], "score": round(best[0], 3)}


def _citation(source: Source, kind: str, claim: str) -> dict[str, object]:
    return {
        "n": source.n,
        "kind": kind,
        "chunk_id": source.chunk_id,
        "document_id": source.document_id,
        "document_name": source.document_name,
        "position": source.position,
        "support": support(claim, source.text),
    }
