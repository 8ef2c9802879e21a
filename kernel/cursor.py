"""Opaque keyset-pagination cursors over (timestamp, id).

A page lists rows ordered by a timestamp and then by id; its cursor names the last
row (that timestamp and that id), and the next page holds what sorts strictly
after it. Pages stay stable while rows are added.

A cursor is urlsafe base64 of a small JSON object. Clients must treat it as
opaque; anything that does not decode to what :func:`encode_cursor` writes is
refused with ``InvalidCursorError``.

NOTE: the cursor is not signed. Forging one reveals nothing: it only chooses where
a page starts, and every query still filters by the caller's tenant.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from kernel.errors import InvalidCursorError
from kernel.ids import is_canonical_id

MAX_CURSOR_CHARS = 256
_VERSION = 1


def encode_cursor(moment: datetime, row_id: str) -> str:
    """Returns the cursor that starts a page just after this row.

    Args:
        moment: The row's sort timestamp (timezone-aware).
        row_id: The row's id (a uuid string, see ``kernel.ids``).

    Returns:
        An opaque, URL-safe string.
    """
    payload = {"v": _VERSION, "u": moment.astimezone(UTC).isoformat(), "i": row_id}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Returns the (timestamp, id) a cursor names, the timestamp in UTC.

    Args:
        cursor: What a client sent back.

    Raises:
        InvalidCursorError: The cursor was not made by :func:`encode_cursor`.
    """
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursorError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = _fields(json.loads(raw.decode("ascii")))
        if not is_canonical_id(row_id):
            raise ValueError("bad id")
        if not isinstance(moment, str):
            raise ValueError("bad timestamp")
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("invalid cursor") from exc
    return parsed.astimezone(UTC), row_id


def _fields(payload: Any) -> tuple[Any, Any]:
    """The (timestamp, id) of a decoded payload, whichever version wrote it."""
    if isinstance(payload, dict) and set(payload) == {"v", "u", "i"}:
        if payload["v"] != _VERSION:
            raise ValueError("unknown version")
        return payload["u"], payload["i"]
    # NOTE: document listings used to write {"t": ..., "i": ...} (no version); a
    # client may still hold such a cursor across an upgrade, so it is still read.
    if isinstance(payload, dict) and set(payload) == {"t", "i"}:
        return payload["t"], payload["i"]
    raise ValueError("unexpected keys")
