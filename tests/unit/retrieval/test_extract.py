"""Text extraction: each supported type, the content-type fallback, and bad uploads."""

from __future__ import annotations

import io

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from retrieval.errors import InvalidDocumentError, UnsupportedDocumentError
from retrieval.extract import extract_text, resolve_content_type


def _pdf(pages: list[list[str]]) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for lines in pages:
        y = 800
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def test_plain_text_keeps_paragraphs_and_indentation() -> None:
    data = b"First paragraph.\r\n\r\n\r\n\r\n    indented code\nlast line   \n"
    result = extract_text(data, "notes.txt", "text/plain; charset=utf-8")
    assert result.content_type == "text/plain"
    assert result.text == "First paragraph.\n\n    indented code\nlast line"


def test_plain_text_honours_declared_charset() -> None:
    result = extract_text("Café crème".encode("latin-1"), "menu.txt", "text/plain; charset=latin-1")
    assert result.text == "Café crème"


def test_utf8_bom_is_dropped() -> None:
    assert extract_text(b"\xef\xbb\xbfhello", "a.txt").text == "hello"


def test_markdown_by_content_type_and_by_extension() -> None:
    data = b"# Title\n\nSome *body* text.\n"
    assert extract_text(data, "readme", "text/markdown").content_type == "text/markdown"
    by_extension = extract_text(data, "README.md", None)
    assert by_extension.content_type == "text/markdown"
    assert by_extension.text == "# Title\n\nSome *body* text."


def test_generic_content_type_falls_back_to_extension() -> None:
    result = extract_text(b"# Heading", "guide.markdown", "application/octet-stream")
    assert result.content_type == "text/markdown"


def test_html_drops_noise_and_keeps_structure() -> None:
    html = b"""<!doctype html><html><head><title>Refund policy</title>
    <style>body { color: red }</style><script>var tracking = 1;</script></head>
    <body><nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
    <h1>Refunds</h1><p>Refunds are issued within <b>14 days</b>.</p>
    <h2>Exceptions</h2><ul><li>Gift cards</li><li>Sale items</li></ul>
    <!-- a comment --><p>Contact&nbsp;support.</p></body></html>"""
    result = extract_text(html, "refunds.html", "text/html; charset=utf-8")
    assert result.content_type == "text/html"
    text = result.text
    assert "# Refunds" in text
    assert "## Exceptions" in text
    assert "Refunds are issued within 14 days." in text
    assert "- Gift cards\n- Sale items" in text
    assert "\n\n" in text
    for noise in ("color: red", "tracking", "Home", "Shop", "a comment"):
        assert noise not in text
    assert text.startswith("# Refund policy")


def test_pdf_text_from_every_page() -> None:
    data = _pdf([["Quarterly report", "Revenue grew by 12 percent."], ["Second page text."]])
    result = extract_text(data, "report.pdf", "application/pdf")
    assert result.content_type == "application/pdf"
    assert "Revenue grew by 12 percent." in result.text
    assert "Second page text." in result.text


def test_pdf_found_by_extension_without_content_type() -> None:
    data = _pdf([["Hello PDF"]])
    assert extract_text(data, "scan.PDF").text == "Hello PDF"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("photo.png", "image/png"), ("archive.zip", None), ("noextension", None)],
)
def test_unsupported_types_are_refused(name: str, content_type: str | None) -> None:
    with pytest.raises(UnsupportedDocumentError):
        extract_text(b"\x89PNG\r\n", name, content_type)


def test_unsupported_even_when_empty() -> None:
    with pytest.raises(UnsupportedDocumentError):
        resolve_content_type("movie.mp4", "video/mp4")


def test_corrupt_pdf_is_invalid() -> None:
    with pytest.raises(InvalidDocumentError):
        extract_text(b"%PDF-1.7\nthis is not really a pdf", "broken.pdf", "application/pdf")


def test_truncated_pdf_is_invalid() -> None:
    data = _pdf([["Some text"]])
    with pytest.raises(InvalidDocumentError):
        extract_text(data[: len(data) // 3], "cut.pdf")


def test_pdf_without_text_is_invalid() -> None:
    with pytest.raises(InvalidDocumentError, match="no text"):
        extract_text(_pdf([[]]), "blank.pdf")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"", "empty.txt"),
        (b"  \n\n\t ", "blank.md"),
        (b"<html><script>x()</script></html>", "a.html"),
    ],
)
def test_empty_documents_are_invalid(data: bytes, name: str) -> None:
    with pytest.raises(InvalidDocumentError):
        extract_text(data, name)


def test_undecodable_text_is_invalid() -> None:
    with pytest.raises(InvalidDocumentError, match="utf-8"):
        extract_text(b"\xff\xfe\xfa broken", "bad.txt", "text/plain")


def test_binary_posing_as_text_is_invalid() -> None:
    with pytest.raises(InvalidDocumentError, match="binary"):
        extract_text(b"abc\x00\x00def", "data.txt")
