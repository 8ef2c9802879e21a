"""Opaque keyset cursors for newest-first document listings.

A cursor names the last item of a page (its creation time and id); the next page
holds what sorts strictly after it in ``(created_at desc, id desc)`` order, so pages
stay stable while documents are added.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from retrieval.errors import InvalidCursorError

_MAX_ID_LENGTH = 36


def as_utc(moment: datetime) -> datetime:
    # NOTE: SQLite hands back naive datetimes even for timezone=True columns; we
    # only ever store UTC, so naive means UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def encode_cursor(created_at: datetime, document_id: str) -> str:
    raw = json.dumps({"t": as_utc(created_at).isoformat(), "i": document_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
        created_at = as_utc(datetime.fromisoformat(fields["t"]))
        document_id = fields["i"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("invalid page cursor") from exc
    if not isinstance(document_id, str) or len(document_id) > _MAX_ID_LENGTH:
        raise InvalidCursorError("invalid page cursor")
    return created_at, document_id
