"""Token-aware chunking with overlap, measured in the embedder's own tokens.

Chunks are cut by semantic-text-splitter on the largest boundary that fits
(sections, then paragraphs, sentences, words), counted with the embedder's
tokenizer so that a chunk is never silently truncated by the model. The defaults
(200 tokens, 40 overlapping) leave room in MiniLM's 256-token window for the
``[CLS]``/``[SEP]`` tokens and for tokenizer differences at chunk edges.
"""

from __future__ import annotations

from dataclasses import dataclass

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

DEFAULT_CHUNK_TOKENS = 200
DEFAULT_CHUNK_OVERLAP = 40


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
    ) -> None:
        """Create a chunker.

        Args:
            tokenizer: The embedder's tokenizer; it is copied, never modified.
            max_tokens: Capacity of a chunk in tokens.
            overlap: Tokens shared by neighbouring chunks, below ``max_tokens``.

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
        pieces = [piece for piece in splitter.chunks(text) if piece.strip()]
        if not pieces:
            return []
        encodings = self._tokenizer.encode_batch(pieces, add_special_tokens=False)
        return [
            Chunk(position=position, text=piece, token_count=len(encoding.ids))
            for position, (piece, encoding) in enumerate(zip(pieces, encodings, strict=True))
        ]

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in tokens, special tokens excluded."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
