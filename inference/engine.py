"""The engine interface: what the turn pipeline needs from any generator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from inference.types import Priority

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    from inference.types import ChatMessage, GenerationEvent, GenerationRequest


class Engine(ABC):
    """A text generator serving many concurrent requests.

    Modelled on vLLM's ``EngineClient``: ``generate`` yields the events of one
    request, ``abort`` stops it. Closing the iterator early aborts the request too.
    """

    model_name: str
    model_version: str

    @abstractmethod
    async def start(self) -> None:
        """Load the model and start the worker; idempotent."""

    @abstractmethod
    async def stop(self) -> None:
        """Cancel what runs and release the worker."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream the events of ``request``: ``TokenEvent``s, then one ``FinishEvent``.

        NOTE: an async generator, not just an iterator, so callers can close it
        early (``aclose`` or ``contextlib.aclosing``), which aborts the request.
        """

    @abstractmethod
    async def abort(self, request_id: str) -> None:
        """Stop a request; its stream ends with ``FinishReason.CANCELLED``.

        Unknown ids are ignored.
        """

    def check_capacity(  # noqa: B027 (optional hook: no queue, no refusal)
        self, priority: Priority = Priority.ONLINE
    ) -> None:
        """Raise ``EngineOverloadedError`` when a new request of ``priority`` would be
        refused now.

        Lets a caller refuse a turn before it stores anything; ``generate`` still
        makes the final decision. Engines without a bounded queue never refuse.
        """

    @abstractmethod
    async def check_health(self) -> None:
        """Raise ``EngineUnavailableError`` unless the engine can serve."""

    @abstractmethod
    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of ``messages`` in the model's chat template, ready for a reply."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in this model's tokenizer."""
