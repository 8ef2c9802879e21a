"""Plain text out of uploaded bytes: text, Markdown, HTML and PDF.

The content type the client sent wins when we know it; a missing, generic or unknown
one falls back to the file extension. HTML is rendered to light Markdown (``#``
headings, blank lines between blocks) so that the Markdown splitter can cut it on
its structure.
"""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass

import structlog
from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from retrieval.errors import InvalidDocumentError, UnsupportedDocumentError

TEXT_PLAIN = "text/plain"
TEXT_MARKDOWN = "text/markdown"
TEXT_HTML = "text/html"
APPLICATION_PDF = "application/pdf"

SUPPORTED_CONTENT_TYPES = frozenset({TEXT_PLAIN, TEXT_MARKDOWN, TEXT_HTML, APPLICATION_PDF})

# Aliases that clients and browsers really send, mapped to the canonical type.
_ALIASES = {
    "text/x-markdown": TEXT_MARKDOWN,
    "text/md": TEXT_MARKDOWN,
    "application/xhtml+xml": TEXT_HTML,
    "application/x-pdf": APPLICATION_PDF,
}

_EXTENSIONS = {
    ".txt": TEXT_PLAIN,
    ".text": TEXT_PLAIN,
    ".md": TEXT_MARKDOWN,
    ".markdown": TEXT_MARKDOWN,
    ".html": TEXT_HTML,
    ".htm": TEXT_HTML,
    ".xhtml": TEXT_HTML,
    ".pdf": APPLICATION_PDF,
}

# Elements whose text is never content a user would ask about.
_NOISE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "svg",
    "iframe",
    "canvas",
    "form",
    "button",
    "head",
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "blockquote",
        "pre",
        "table",
        "tr",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "figure",
        "figcaption",
        "address",
        "details",
        "summary",
        "hr",
    }
)

_log = structlog.get_logger(__name__)

_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Caps on reading one document; passing one fails the document with its code.

    Attributes:
        max_pages: Most PDF pages (``too_many_pages``).
        max_chars: Most characters of extracted text (``too_much_text``).
        timeout_s: Wall time of the extraction process before it is killed
            (``extraction_timeout``); its CPU time is capped likewise.
        memory_mb: Address space of the extraction process (``extraction_out_of_memory``);
            0 leaves it unbounded.
    """

    max_pages: int = 2000
    max_chars: int = 10_000_000
    timeout_s: float = 60.0
    memory_mb: int = 2048


NO_LIMITS = ExtractLimits(max_pages=1 << 30, max_chars=1 << 40, timeout_s=0.0, memory_mb=0)
"""For callers that read trusted bytes in-process (tests, tools)."""


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """Text pulled out of a document, with the content type it was read as."""

    text: str
    content_type: str


def resolve_content_type(name: str, content_type: str | None) -> str:
    """The canonical content type to read ``name`` as.

    Args:
        name: The document's file name; its extension is the fallback.
        content_type: What the client sent, parameters (``; charset=...``) allowed.

    Returns:
        One of ``SUPPORTED_CONTENT_TYPES``.

    Raises:
        UnsupportedDocumentError: Neither the content type nor the extension is one we read.
    """
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().lower()
        media_type = _ALIASES.get(media_type, media_type)
        if media_type in SUPPORTED_CONTENT_TYPES:
            return media_type
    extension = posixpath.splitext(name.strip().lower())[1]
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    shown = content_type or "no content type"
    raise UnsupportedDocumentError(
        f"cannot read {name!r} ({shown}); supported: plain text, Markdown, HTML and PDF"
    )


def extract_text(
    data: bytes, name: str, content_type: str | None = None, limits: ExtractLimits = NO_LIMITS
) -> ExtractedText:
    """Extract the text of a document in this process. Blocking, and as slow or
    hungry as the document makes it: uploads go through ``extract_process`` instead.

    Args:
        data: The file's bytes.
        name: The file name, used when the content type is missing or unknown.
        content_type: The client's content type, if any.
        limits: Page and text caps (time and memory are the calling process's).

    Returns:
        The text (whitespace normalised, never empty) and the canonical content type.

    Raises:
        UnsupportedDocumentError: Not a type we can read.
        InvalidDocumentError: The bytes are undecodable, corrupt, hold no text, or pass
            a cap (``code`` ``too_many_pages`` or ``too_much_text``).
    """
    resolved = resolve_content_type(name, content_type)
    if not data:
        raise InvalidDocumentError(f"{name!r} is empty")
    if resolved == APPLICATION_PDF:
        text = _pdf_text(data, name, limits)
    elif resolved == TEXT_HTML:
        text = _html_text(data, name)
    else:
        text = _decode(data, name, _charset(content_type))
    # Text and Markdown keep their indentation (code blocks, nested lists); markup
    # and PDF layout whitespace carries no meaning, so it is collapsed.
    _check_chars(len(text), name, limits)
    text = _tidy(text, collapse_spaces=resolved in (TEXT_HTML, APPLICATION_PDF))
    if not text:
        raise InvalidDocumentError(f"{name!r} holds no text")
    return ExtractedText(text=text, content_type=resolved)


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return None


def _decode(data: bytes, name: str, charset: str | None) -> str:
    # NOTE: without a declared charset we insist on UTF-8 (BOM allowed) rather than
    # guessing: a wrong guess would index mojibake that no query ever matches.
    encoding = charset or "utf-8-sig"
    try:
        text = data.decode(encoding)
    except LookupError as exc:
        raise InvalidDocumentError(f"{name!r} declares an unknown charset {charset!r}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidDocumentError(f"{name!r} is not valid {encoding} text") from exc
    if "\x00" in text:
        raise InvalidDocumentError(f"{name!r} looks like a binary file, not text")
    return text


def _check_chars(chars: int, name: str, limits: ExtractLimits) -> None:
    if chars > limits.max_chars:
        raise InvalidDocumentError(
            f"{name!r} holds more than {limits.max_chars} characters of text", "too_much_text"
        )


def _pdf_text(data: bytes, name: str, limits: ExtractLimits) -> str:
    pages: list[str] = []
    chars = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidDocumentError(f"{name!r} is an encrypted PDF")
        if len(reader.pages) > limits.max_pages:
            raise InvalidDocumentError(
                f"{name!r} has {len(reader.pages)} pages; the limit is {limits.max_pages}",
                "too_many_pages",
            )
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            chars += len(text)
            _check_chars(chars, name, limits)  # early: the rest need not be read
            if text:
                pages.append(text)
    except InvalidDocumentError:
        raise
    # NOTE: pypdf raises a zoo of exceptions on damaged files (PdfReadError, but also
    # ValueError, KeyError, struct errors...); all of them mean "corrupt upload". Its
    # text describes pypdf's internals: it goes to the log, not to the client.
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        _log.info("pdf_unreadable", document=name, error=repr(exc))
        raise InvalidDocumentError(f"{name!r} is not a readable PDF") from exc
    return "\n\n".join(pages)


def _html_text(data: bytes, name: str) -> str:
    # BeautifulSoup detects the encoding (meta tag, BOM, then heuristics) itself.
    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_NOISE_TAGS):
        tag.decompose()
    root = soup.body or soup
    parts: list[str] = []
    _render(root, parts)
    text = "".join(parts)
    if title and title not in text:
        text = f"# {title}\n\n{text}"
    if "\x00" in text:
        raise InvalidDocumentError(f"{name!r} is not valid HTML text")
    return text


def _render(node: Tag, out: list[str]) -> None:
    """Append ``node``'s text to ``out``, marking headings and block boundaries."""
    for child in node.children:
        if isinstance(child, NavigableString):
            # Comments, doctypes and CDATA are NavigableString subclasses: skip them.
            if type(child) is NavigableString:
                out.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        if child.name in _HEADINGS:
            heading = child.get_text(" ", strip=True)
            if heading:
                out.append(f"\n\n{'#' * _HEADINGS[child.name]} {heading}\n\n")
        elif child.name == "br":
            out.append("\n")
        elif child.name == "li":
            # Each item starts its own line; the list's block break ends the last.
            out.append("\n- ")
            _render(child, out)
        elif child.name in ("td", "th"):
            _render(child, out)
            out.append(" | ")
        elif child.name in _BLOCK_TAGS:
            out.append("\n\n")
            _render(child, out)
            out.append("\n\n")
        else:
            _render(child, out)


def _tidy(text: str, *, collapse_spaces: bool) -> str:
    """Normalise line ends and collapse blank-line runs; keep paragraph breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if collapse_spaces:
        lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    else:
        lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
