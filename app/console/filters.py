"""The queue's filters as the console's forms and links carry them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from conversation import TaskFilters
from kernel.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FILTER_FIELDS", "filters_from", "filters_query"]

FILTER_FIELDS = ("source", "collection", "model_version", "since", "until", "status")
"""Query or form fields naming a filter; empty ones filter nothing."""
_STATUSES = ("open", "done", "all")


def _day(name: str, value: str, *, end: bool) -> datetime:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInputError(f"{name} is a date like 2026-12-31.") from None
    # ``until`` names a whole day: up to the start of the next one.
    return day + timedelta(days=1) if end else datetime.combine(day.date(), time(), UTC)


def filters_from(values: Mapping[str, Any]) -> TaskFilters:
    """The filters named in a query string or a form.

    Raises:
        InvalidInputError: A malformed date or status.
    """

    def text(name: str) -> str | None:
        value = values.get(name)
        return str(value).strip()[:200] or None if value is not None else None

    status = text("status") or "open"
    if status not in _STATUSES:
        raise InvalidInputError(f"status is one of {', '.join(_STATUSES)}.")
    since, until = text("since"), text("until")
    return TaskFilters(
        source=text("source"),
        collection=text("collection"),
        model_version=text("model_version"),
        since=_day("since", since, end=False) if since else None,
        until=_day("until", until, end=True) if until else None,
        status=None if status == "all" else status,  # type: ignore[arg-type]
    )


def filters_query(values: Mapping[str, Any], **extra: str) -> str:
    """The filters of ``values`` (and ``extra``) as a query string for links."""
    kept = {k: str(values[k]) for k in FILTER_FIELDS if values.get(k)}
    kept.update(extra)
    return urlencode(kept)
