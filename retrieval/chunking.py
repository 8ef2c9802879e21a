"""Token-aware chunking with overlap, measured in the embedder's own tokens.

Chunks are cut by semantic-text-splitter on the largest boundary that fits
(sections, then paragraphs, sentences, words), counted with the embedder's
tokenizer so that a chunk is never silently truncated by the model. The defaults
(200 tokens, 40 overlapping) leave room in MiniLM's 256-token window for the
``[CLS]``/``[SEP]`` tokens, for tokenizer differences at chunk edges and for the
chunk's heading path.

Each chunk knows its heading path: the headings above it in the document (Markdown
``#`` headings, and underlined "setext" headings as Markdown and reStructuredText
write them), outermost first. The indexer embeds it before the chunk's text, so the
third chunk of a section still says which section it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

DEFAULT_CHUNK_TOKENS = 200
DEFAULT_CHUNK_OVERLAP = 40
MAX_HEADING_CHARS = 160
"""Longest heading path kept (its innermost headings first to go)."""

_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SETEXT = re.compile(r"^([^\n]*\S[^\n]*)\n(=+|-+|~+|\^+|\*+)[ \t]*$", re.MULTILINE)
_LIST_OR_TABLE = re.compile(r"^\s*(?:[-*+>|]|\d+[.)])\s")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, as embedded and stored.

    Attributes:
        position: Zero-based order of the chunk within its document.
        text: The chunk's text.
        token_count: Its length in the embedder's tokens, special tokens excluded.
    """

    position: int
    text: str
    token_count: int
    heading: str = ""
    """The headings above the chunk, outermost first, joined by " > " (empty when
    none, or when the chunk opens with its only heading)."""

    @property
    def embedded_text(self) -> str:
        """What the embedder reads: the heading path, then the text."""
        return f"{self.heading}\n\n{self.text}" if self.heading else self.text


class Chunker:
    """Splits text into overlapping chunks of at most ``max_tokens`` tokens.

    Building the splitters is cheap but not free; make one ``Chunker`` per service
    and reuse it. Its methods are blocking and thread-safe.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_tokens: int = DEFAULT_CHUNK_TOKENS,
        overlap: int = DEFAULT_CHUNK_OVERLAP,
        *,
        heading_context: bool = True,
    ) -> None:
        """Create a chunker.

        Args:
            tokenizer: The embedder's tokenizer; it is copied, never modified.
            max_tokens: Capacity of a chunk in tokens.
            overlap: Tokens shared by neighbouring chunks, below ``max_tokens``.
            heading_context: Give each chunk its heading path (else none).

        Raises:
            ValueError: The sizes are out of range.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= overlap < max_tokens:
            raise ValueError(f"overlap must be in [0, {max_tokens}), got {overlap}")
        # NOTE: the packaged tokenizer.json enables truncation (128) and padding, which
        # would make every long piece of text look like it fits; count on a copy
        # with both turned off.
        counting = Tokenizer.from_str(tokenizer.to_str())
        counting.no_truncation()
        counting.no_padding()
        self._tokenizer = counting
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.heading_context = heading_context
        self._text = TextSplitter.from_huggingface_tokenizer(counting, max_tokens, overlap)
        self._markdown = MarkdownSplitter.from_huggingface_tokenizer(counting, max_tokens, overlap)

    def split(self, text: str, *, markdown: bool = False) -> list[Chunk]:
        """Split ``text`` into chunks.

        Args:
            text: The document text.
            markdown: Cut on Markdown structure (headings, lists, code blocks) first.

        Returns:
            The chunks in document order, empty when ``text`` is blank.
        """
        splitter = self._markdown if markdown else self._text
        found = [(at, piece) for at, piece in splitter.chunk_indices(text) if piece.strip()]
        if not found:
            return []
        pieces = [piece for _, piece in found]
        encodings = self._tokenizer.encode_batch(pieces, add_special_tokens=False)
        marks = headings(text) if self.heading_context else []
        return [
            Chunk(
                position=position,
                text=piece,
                token_count=len(encoding.ids),
                heading=heading_path(marks, at, piece),
            )
            for position, ((at, piece), encoding) in enumerate(zip(found, encodings, strict=True))
        ]

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in tokens, special tokens excluded."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def headings(text: str) -> list[tuple[int, int, str]]:
    """The document's headings as ``(offset, level, title)``, in order.

    ``#`` headings take their level from the number of hashes; underlined headings
    from the order in which each underline character first appears (as
    reStructuredText does: the first style seen is the outermost), after the
    ``#`` levels in use.
    """
    found: list[tuple[int, int, str]] = [
        (m.start(), len(m.group(1)), m.group(2).strip()) for m in _ATX.finditer(text)
    ]
    styles: list[str] = []
    for m in _SETEXT.finditer(text):
        title, underline = m.group(1).strip(), m.group(2)
        if len(underline) < 3 or len(title) > 120 or _LIST_OR_TABLE.match(m.group(1)):
            continue
        if len(underline) < len(title) // 2:
            continue  # a short rule under a long line: a divider, not an underline
        if underline[0] not in styles:
            styles.append(underline[0])
        found.append((m.start(), 6 + styles.index(underline[0]) + 1, title))
    found.sort()
    atx_levels = sorted({level for _, level, _ in found if level <= 6})
    setext_levels = sorted({level for _, level, _ in found if level > 6})
    rank = {level: i + 1 for i, level in enumerate(atx_levels + setext_levels)}
    return [(at, rank[level], title) for at, level, title in found]


def heading_path(marks: list[tuple[int, int, str]], offset: int, piece: str) -> str:
    """The path of headings in force at ``offset`` (see ``headings``), outermost
    first; a heading the chunk itself opens with is left out (the text holds it)."""
    stack: list[tuple[int, str]] = []
    for at, level, title in marks:
        if at > offset:
            break
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
    titles = [title for _, title in stack]
    if titles and piece.lstrip().startswith(titles[-1]):
        titles.pop()
    while titles and len(" > ".join(titles)) > MAX_HEADING_CHARS:
        titles.pop()
    return " > ".join(titles)
