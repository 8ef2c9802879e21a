"""Checks on an upload that need no model: size, type and a look at the first bytes.

They run before a document is queued, so a client learns at once (4xx) that a file
can never be indexed, instead of finding a ``failed`` document later. Parsing
errors deeper in a file (a damaged PDF page, bad HTML) only show in extraction and
end as ``failed`` with the reason.
"""

from __future__ import annotations

from retrieval.errors import DocumentTooLargeError, InvalidDocumentError
from retrieval.extract import APPLICATION_PDF, resolve_content_type

# Bytes looked at; enough for every signature below and a fair sample of text.
_SNIFF_BYTES = 8192
_PDF_MAGIC = b"%PDF-"


def sniff_upload(data: bytes, name: str, content_type: str | None, max_bytes: int) -> str:
    """Check an upload cheaply and return the content type it will be read as.

    Args:
        data: The file's bytes.
        name: The file name (its extension is the fallback type).
        content_type: The client's content type, if any.
        max_bytes: Largest upload accepted.

    Returns:
        The canonical content type.

    Raises:
        UnsupportedDocumentError: Not a type we read.
        DocumentTooLargeError: Larger than ``max_bytes``.
        InvalidDocumentError: Empty, or its first bytes contradict its type.
    """
    if len(data) > max_bytes:
        raise DocumentTooLargeError(f"{name!r} is {len(data)} bytes; the limit is {max_bytes}")
    resolved = resolve_content_type(name, content_type)
    if not data.strip():
        raise InvalidDocumentError(f"{name!r} is empty")
    head = data[:_SNIFF_BYTES]
    if resolved == APPLICATION_PDF:
        # NOTE: the spec lets a PDF header sit anywhere in the first 1024 bytes.
        if _PDF_MAGIC not in head[:1024]:
            raise InvalidDocumentError(f"{name!r} is not a PDF (no %PDF- header)")
    elif b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # NUL bytes outside a UTF-16 file mean binary data, whatever the name says.
        raise InvalidDocumentError(f"{name!r} looks like a binary file, not text")
    return resolved
