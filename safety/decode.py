"""Text hidden in encodings, decoded so the detectors read what the model would.

An attacker who writes "Ignore all previous instructions" in base64, hex, binary,
Morse or Unicode tag characters, and asks the model to decode it, gets past any
filter that reads only the surface. The encodings tried here are the ones scanners
probe models with (garak's ``encoding`` probes: base16/32/64/85, ASCII85, binary,
Morse, ROT13, quoted-printable, URL and escape sequences, plus the invisible
Unicode tag block). A segment counts only when it decodes to readable text with a
space in it, so a checksum, a token or an image decodes to nothing.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Runs long enough to hide a sentence (24 characters of base64 are 18 bytes).
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])")
_BASE32_RUN = re.compile(r"(?<![A-Za-z0-9=])[A-Z2-7]{24,}={0,6}(?![A-Za-z0-9=])")
# NOTE: every run below matches in linear time: each repeated piece starts with a
# character the piece before cannot end with, and no run ends in a look-ahead that a
# shorter match could satisfy (a run of 8,000 hex digits must not rescan itself).
_HEX_RUN = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{24,}|(?:[0-9A-Fa-f]{2}[ :]){11,}[0-9A-Fa-f]{2})"
)
_BINARY_RUN = re.compile(r"(?<![0-9])(?:[01]{32,}|(?:[01]{8} ){3,}[01]{8})")
_ASCII85_RUN = re.compile(r"<~([!-u\s]{10,})~>")
_BASE85_RUN = re.compile(r"(?<!\S)[!-~]{24,}(?!\S)")
_ESCAPES = re.compile(r"(?:\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}|\\U[0-9A-Fa-f]{8}){4,}")
_PERCENT = re.compile(r"(?<!\S)(?:[^\s%]*%[0-9A-Fa-f]{2}){3,}[^\s%]*")
_QUOTED_PRINTABLE = re.compile(r"(?:=[0-9A-F]{2}){4,}")
_MORSE_RUN = re.compile(r"(?<![^\s/])[.-]{1,6}(?:(?: / | {1,3}|/)[.-]{1,6}){3,}(?![^\s/])")
_TAGS = re.compile("[\U000e0020-\U000e007e]{4,}")

_MORSE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g",
    "....": "h", "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n",
    "---": "o", ".--.": "p", "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u",
    "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z", "-----": "0",
    ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9",
}  # fmt: skip


def readable(raw: bytes | str) -> str | None:
    """``raw`` as text if it reads as words: UTF-8, printable, with a space."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None
    text = text.strip()
    if not text or " " not in text:
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in text)
    return text if printable / len(text) > 0.95 else None


def _base64(run: str) -> bytes:
    padded = run + "=" * (-len(run) % 4)
    return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)


def _base32(run: str) -> bytes:
    return base64.b32decode(run + "=" * (-len(run) % 8))


def _hex(run: str) -> bytes:
    return bytes.fromhex(re.sub(r"[ :]", "", run))


def _binary(run: str) -> bytes:
    bits = run.replace(" ", "")
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8))


def _ascii85(run: str) -> bytes:
    return base64.a85decode(run, adobe=False, ignorechars=b" \t\n\r\v")


def _base85(run: str) -> bytes:
    try:
        return base64.b85decode(run)
    except ValueError:
        return base64.a85decode(run)


def _escapes(run: str) -> str:
    return codecs.decode(run, "unicode_escape")


def _percent(run: str) -> str:
    return urllib.parse.unquote(run, errors="strict")


def _quoted_printable(run: str) -> bytes:
    return binascii.a2b_qp(run)


def _morse(run: str) -> str:
    """Words split by "/" or two spaces, letters by one; "" when a code is unknown."""
    words = re.split(r" ?/ ?| {2,}", run)
    text = " ".join("".join(_MORSE.get(code, "?") for code in word.split()) for word in words)
    return "" if "?" in text else text


def _tags(run: str) -> str:
    return "".join(chr(ord(ch) - 0xE0000) for ch in run)


_DECODERS: tuple[tuple[re.Pattern[str], Callable[[str], bytes | str]], ...] = (
    (_BASE64_RUN, _base64),
    (_BASE32_RUN, _base32),
    (_HEX_RUN, _hex),
    (_BINARY_RUN, _binary),
    (_ASCII85_RUN, _ascii85),
    (_BASE85_RUN, _base85),
    (_ESCAPES, _escapes),
    (_PERCENT, _percent),
    (_QUOTED_PRINTABLE, _quoted_printable),
    (_MORSE_RUN, _morse),
    (_TAGS, _tags),
)


def _candidates(text: str) -> Iterator[str]:
    for pattern, decode in _DECODERS:
        for match in pattern.finditer(text):
            run = match.group(1) if pattern.groups else match.group(0)
            try:
                decoded = readable(decode(run))
            except (ValueError, OverflowError):  # binascii.Error and UnicodeDecodeError among them
                continue
            if decoded is not None and decoded != run:
                yield decoded


def decoded_segments(text: str, limit: int = 8) -> tuple[str, ...]:
    """Texts hidden in ``text`` in any of the encodings above, at most ``limit``."""
    found: dict[str, None] = {}
    for decoded in _candidates(text):
        found[decoded] = None
        if len(found) >= limit:
            break
    return tuple(found)


def rot13(folded: str) -> str:
    """``folded`` read as ROT13 (a text that is ROT13 reads as plain text)."""
    return codecs.encode(folded, "rot13")
