"""Errors particular to the OpenAI-compatible API.

Their wire shape is chosen by route in ``app.errors.error_response``: every error
on ``/v1/chat/completions``, ``/v1/models`` and ``/v1/embeddings`` is OpenAI's
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from app.errors import ResourceNotFoundError


class ModelNotFoundError(ResourceNotFoundError):
    """The request names a model this server does not serve (OpenAI's ``model_not_found``)."""

    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
