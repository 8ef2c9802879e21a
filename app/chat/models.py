"""Which chat model this node serves, and the one check of a requested model name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.errors import ModelNotFoundError, UnavailableError

if TYPE_CHECKING:
    from inference import Engine

__all__ = ["ChatModel", "served_id"]


def served_id(name: str) -> str:
    """The stable, lower-case id a model is served under (``smollm2-135m-instruct``)."""
    return "-".join(name.strip().lower().split())


class ChatModel:
    """The generator of this node, or none: answers "is this model served here?".

    Every transport (WebSocket, REST, the OpenAI API) asks through ``require``, so a
    model name is compared one way everywhere: by its served id, case and spacing
    aside.
    """

    def __init__(self, engine: Engine | None) -> None:
        self._engine = engine

    @property
    def id(self) -> str | None:
        """The generator's served id, ``None`` when this node does not generate."""
        if self._engine is None or not self._engine.model_name:
            return None
        return served_id(self._engine.model_name)

    def require(self, requested: str | None) -> str:
        """The served id, checking the model a request names (``None``: any).

        Raises:
            UnavailableError: This node does not generate (503).
            ModelNotFoundError: The request names another model (404).
        """
        model = self.id
        if model is None:
            raise UnavailableError("Generation is not enabled on this node.")
        if requested is not None and served_id(requested) != model:
            raise ModelNotFoundError(requested)
        return model
