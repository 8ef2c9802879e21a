"""The base of every wire schema: unknown fields are errors, not silently dropped."""

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(Schema):
    code: str
    message: str


class ErrorResponse(Schema):
    """What every failed request answers."""

    error: ErrorBody
