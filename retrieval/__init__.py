"""Documents, chunking, embedding and vector search for ragserve tenants."""

from retrieval.chunking import Chunk, Chunker
from retrieval.embedding import (
    Embedder,
    SentenceTransformerEmbedder,
    load_tokenizer,
    packaged_model_path,
)
from retrieval.errors import (
    DocumentNotFoundError,
    InvalidCursorError,
    InvalidDocumentError,
    InvalidRequestError,
    RetrievalError,
    UnsupportedDocumentError,
    VectorStoreUnavailableError,
)
from retrieval.extract import SUPPORTED_CONTENT_TYPES, ExtractedText, extract_text
from retrieval.models import Base, DocumentRow
from retrieval.service import RetrievalService
from retrieval.types import (
    ChunkHit,
    DocumentInfo,
    DocumentPage,
    DocumentStatus,
    IngestOutcome,
    IngestResult,
)
from retrieval.vector_store import ChunkPoint, QdrantVectorStore, VectorStore

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "Base",
    "Chunk",
    "ChunkHit",
    "ChunkPoint",
    "Chunker",
    "DocumentInfo",
    "DocumentNotFoundError",
    "DocumentPage",
    "DocumentRow",
    "DocumentStatus",
    "Embedder",
    "ExtractedText",
    "IngestOutcome",
    "IngestResult",
    "InvalidCursorError",
    "InvalidDocumentError",
    "InvalidRequestError",
    "QdrantVectorStore",
    "RetrievalError",
    "RetrievalService",
    "SentenceTransformerEmbedder",
    "UnsupportedDocumentError",
    "VectorStore",
    "VectorStoreUnavailableError",
    "extract_text",
    "load_tokenizer",
    "packaged_model_path",
]
