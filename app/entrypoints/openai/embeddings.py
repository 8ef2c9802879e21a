"""OpenAI's wire models for ``/v1/embeddings`` and ``/v1/models``.

Requests follow the same rules as chat completions (``app.entrypoints.openai.protocol``):
unknown fields are ignored, known ones are type-checked.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr

from app.entrypoints.openai.protocol import WireModel

MAX_EMBEDDING_INPUTS = 256
"""Texts one embeddings request may carry."""
MAX_EMBEDDING_CHARS = 16_384
"""Characters per embedded text (the model reads at most its window of tokens)."""

EmbeddingText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_EMBEDDING_CHARS)]
EmbeddingTexts = Annotated[
    list[EmbeddingText], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)
]


class EmbeddingRequest(WireModel):
    """``POST /v1/embeddings``."""

    model: StrictStr = Field(min_length=1, max_length=256)
    input: EmbeddingText | EmbeddingTexts = Field(...)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(default=None, ge=1)
    user: StrictStr | None = Field(default=None, max_length=256)

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragserve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
