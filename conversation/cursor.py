"""Opaque keyset-pagination cursors over (updated_at, id).

A cursor is urlsafe base64 of a small JSON object naming the last row of a page.
Clients must treat it as opaque; anything that does not decode to exactly what
``encode_cursor`` writes is refused.

NOTE: the cursor is not signed. Forging one reveals nothing: it only chooses where
a page starts, and every query still filters by the caller's tenant.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from conversation.errors import InvalidCursorError

_VERSION = 1
MAX_CURSOR_CHARS = 256


def encode_cursor(updated_at: datetime, row_id: str) -> str:
    """Returns the cursor that starts a page just after this row."""
    payload = {"v": _VERSION, "u": updated_at.astimezone(UTC).isoformat(), "i": row_id}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Returns the (updated_at, id) a cursor names.

    Raises:
        InvalidCursorError: The cursor was not made by :func:`encode_cursor`.
    """
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursorError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw.decode("ascii"))
        if not isinstance(payload, dict) or set(payload) != {"v", "u", "i"}:
            raise ValueError("unexpected keys")
        if payload["v"] != _VERSION:
            raise ValueError("unknown version")
        row_id = payload["i"]
        if not isinstance(row_id, str) or str(uuid.UUID(row_id)) != row_id:
            raise ValueError("bad id")
        if not isinstance(payload["u"], str):
            raise ValueError("bad timestamp")
        updated_at = datetime.fromisoformat(payload["u"])
        if updated_at.tzinfo is None:
            raise ValueError("naive timestamp")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("invalid cursor") from exc
    return updated_at.astimezone(UTC), row_id
