"""The one keyset cursor codec that every listing shares."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kernel.cursor import decode_cursor, encode_cursor
from kernel.errors import InvalidCursorError
from kernel.ids import new_id


def test_a_cursor_names_its_row_in_utc() -> None:
    row_id = new_id()
    moment = datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor(moment, row_id)) == (moment.astimezone(UTC), row_id)


def test_a_document_cursor_from_before_the_codecs_merged_still_reads() -> None:
    """Guards clients paging through documents across the upgrade that merged the codecs."""
    row_id = new_id()
    moment = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    legacy = json.dumps({"t": moment.isoformat(), "i": row_id})
    cursor = base64.urlsafe_b64encode(legacy.encode()).decode().rstrip("=")
    assert decode_cursor(cursor) == (moment, row_id)


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 2, "u": "2025-01-01T00:00:00+00:00", "i": "00000000-0000-4000-8000-000000000000"},
        {"t": "2025-01-01T00:00:00", "i": "00000000-0000-4000-8000-000000000000"},
        {"t": "2025-01-01T00:00:00+00:00", "i": "doc-1"},
        {"v": 1, "u": 5, "i": "00000000-0000-4000-8000-000000000000"},
        ["not", "an", "object"],
    ],
)
def test_a_cursor_it_did_not_write_is_refused(payload: object) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
