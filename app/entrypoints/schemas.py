"""The base of every wire schema: unknown fields are errors, not silently dropped."""

from typing import Any, Self

from litestar.exceptions import ValidationException
from pydantic import BaseModel, ConfigDict, ValidationError


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate a body; a bad one is Litestar's ``ValidationException`` (400).

        NOTE: raised here, not left to Litestar: Litestar takes an error on a body
        field named like one of the handler's dependencies (``tenants``,
        ``retrieval``) for a failed dependency, and answers 500.
        """
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            problems = [
                {
                    "key": ".".join(str(part) for part in error["loc"]) or "body",
                    "message": error["msg"],
                }
                for error in exc.errors(include_url=False, include_input=False)
            ]
            raise ValidationException("Invalid request body", extra=problems) from exc


class ErrorBody(Schema):
    code: str
    message: str


class ErrorResponse(Schema):
    """What every failed request answers."""

    error: ErrorBody
