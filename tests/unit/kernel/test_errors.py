"""Every domain error is a ``DomainError`` of one shared kind, and keeps its old bases."""

from __future__ import annotations

import pytest

import kernel.errors
from conversation import InvalidInputError, NotFoundError, TaskNotFoundError
from inference.errors import EngineOverloadedError, EngineUnavailableError
from retrieval.errors import DocumentNotFoundError, IngestQueueFullError, RetrievalError


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NotFoundError("x"), kernel.errors.NotFoundError),
        (TaskNotFoundError("x"), kernel.errors.NotFoundError),
        (DocumentNotFoundError("x"), kernel.errors.NotFoundError),
        (InvalidInputError("x"), kernel.errors.InvalidInputError),
        (EngineUnavailableError("x"), kernel.errors.UnavailableError),
        (EngineOverloadedError("x"), kernel.errors.OverloadedError),
        (IngestQueueFullError("x"), kernel.errors.OverloadedError),
    ],
)
def test_domain_errors_have_a_shared_kind(error: Exception, kind: type[Exception]) -> None:
    assert isinstance(error, kind)
    assert isinstance(error, kernel.errors.DomainError)


def test_the_old_bases_and_attributes_stay() -> None:
    """Guards callers that catch the builtin bases or read ``retry_after``."""
    assert isinstance(InvalidInputError("x"), ValueError)
    assert isinstance(TaskNotFoundError("x"), LookupError)
    assert isinstance(IngestQueueFullError("x"), RetrievalError)
    assert IngestQueueFullError("x").retry_after == 5.0
    assert EngineOverloadedError("x", retry_after=2.0).retry_after == 2.0
    # A bad cursor is a 400, not one of the 404 or 422 kinds.
    assert not isinstance(kernel.errors.InvalidCursorError("x"), kernel.errors.InvalidInputError)
    # Conversation's not-found is not retrieval's: the API maps them separately.
    assert not isinstance(DocumentNotFoundError("x"), NotFoundError)
