"""A lost database connection reaches the client as a safe 503, never a 500."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, OperationalError

from app.core.errors import classify


def test_a_dropped_connection_is_a_503_without_its_text() -> None:
    """Guards the PostgreSQL restart: in-flight requests got 500 with the driver's error."""
    exc = OperationalError("SELECT 1", {}, ConnectionRefusedError("10.0.0.5:5432 refused"))
    error = classify(exc)
    assert error.status_code == 503
    assert error.code == "database_unavailable"
    assert error.retry_after == 1.0
    assert "10.0.0.5" not in str(error.to_payload())


def test_a_bad_query_is_still_a_500() -> None:
    """Only outages become 503; a constraint violation is a bug, not a retry."""
    error = classify(IntegrityError("INSERT", {}, Exception("duplicate")))
    assert error.status_code == 500
