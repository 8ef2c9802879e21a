"""The base of every wire schema: unknown fields are errors, not silently dropped, and a
JSON value of the wrong type is an error, not coerced."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What Python's ``str.strip`` strips, spelled out: ``\\s`` differs between regex
dialects (Python's, Rust's in pydantic, ECMAScript's in clients)."""
NOT_BLANK = f"[^{_SPACE}]"
"""A text's pattern (unanchored: it contains something besides spaces)."""
LABEL_PATTERN = f"^[^\\x00-\\x1f\\x7f]*[^{_SPACE}\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*$"
"""A collection or document name: no control character, and not only spaces (the
server strips outer spaces and refuses what is left empty, ``retrieval.validation``)."""


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse what pydantic's lax mode would coerce: ``"true"`` or ``1`` for a
        boolean, ``"10"`` or ``true`` for a number; take an integral float (``42.0``)
        for an integer, as JSON Schema counts it one."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None or value is None:
            return value
        scalars = _scalar_types(field.annotation)
        if not scalars or type(value) in scalars:
            return value
        if bool in scalars or isinstance(value, (str, bool)):
            raise ValueError(f"Input should be {_names(scalars)}")
        return integral(field.annotation, value)


def integral(annotation: Any, value: Any) -> Any:
    """``value`` as an int when it is an integral float and ``annotation`` an integer
    field's (JSON Schema counts ``42.0`` an integer); otherwise ``value`` as it is."""
    if isinstance(value, float) and value.is_integer():
        scalars = _scalar_types(annotation)
        if int in scalars and float not in scalars:
            return int(value)
    return value


def _scalar_types(annotation: Any) -> set[type]:
    """The JSON scalar types (bool, int, float) an annotation admits when it admits
    nothing else but ``None``; empty when it admits other types too."""
    union = get_origin(annotation) in (Union, types.UnionType)
    members = [
        get_args(m)[0] if get_origin(m) is Annotated else m
        for m in (get_args(annotation) if union else (annotation,))
        if m is not type(None)
    ]
    if members and all(m in (bool, int, float) for m in members):
        found = set(members)
        if float in found:
            found.add(int)  # JSON has one number type: 3 is a valid float.
        return found
    return set()


def _names(scalars: set[type]) -> str:
    if bool in scalars:
        return "a valid boolean"
    return "a valid integer" if float not in scalars else "a valid number"


class ErrorBody(Schema):
    code: str
    message: str


class ErrorResponse(Schema):
    """What every failed request answers."""

    error: ErrorBody
