"""What a turn has produced so far and how long each stage took: its stored answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.chat.prompt import Source
from app.chat.response_cache.base import CacheProbe
from inference import FinishEvent
from safety import Verdict


class Stopwatch:
    """Per-stage timings of a turn, in milliseconds, as stored on the answer."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._last = self.start
        self.timings: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round((now - self._last) * 1000, 2)
        self._last = now

    def mark(self, stage: str, since: float) -> None:
        self.timings[stage] = round((time.perf_counter() - since) * 1000, 2)


@dataclass
class TurnOutcome:
    """What a turn produced so far; becomes the stored answer."""

    parts: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    withheld: list[Source] = field(default_factory=list)
    """Chunks the retrieval filter refused: not in the prompt, named in the answer."""
    verdicts: list[Verdict] = field(default_factory=list)
    prompt_tokens: int = 0
    engine_finish: FinishEvent | None = None
    finish_reason: str | None = None
    error: str | None = None
    """A sentence about a failure, safe to show a client."""
    error_code: str | None = None
    cache: CacheProbe | None = None
    """The response cache's key and hit for this turn; ``None``: not cacheable."""

    def end(self, reason: str, error: str | None = None, code: str | None = None) -> None:
        if self.finish_reason is None:
            self.finish_reason, self.error, self.error_code = reason, error, code

    @property
    def completion_tokens(self) -> int:
        if self.cache is not None and self.cache.hit is not None:
            return 0  # replayed, not generated
        return self.engine_finish.completion_tokens if self.engine_finish else len(self.parts)
