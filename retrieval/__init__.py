"""Documents, chunking, embedding and vector search for ragserve tenants."""

from kernel.errors import InvalidCursorError
from retrieval.chunking import Chunk, Chunker
from retrieval.embedding import (
    Embedder,
    SentenceTransformerEmbedder,
    load_tokenizer,
    packaged_model_path,
)
from retrieval.errors import (
    DocumentNotFoundError,
    IngestQueueFullError,
    IngestQueueUnavailableError,
    InvalidDocumentError,
    InvalidRequestError,
    RetrievalError,
    UnsupportedDocumentError,
    VectorStoreOverloadedError,
    VectorStoreUnavailableError,
)
from retrieval.extract import SUPPORTED_CONTENT_TYPES, ExtractedText, extract_text
from retrieval.ingest_queue import (
    Delivery,
    IngestQueue,
    InProcessIngestQueue,
    RedisStreamsIngestQueue,
)
from retrieval.models import DocumentRow, DocumentUploadRow
from retrieval.search import CacheConfig
from retrieval.service import RetrievalService
from retrieval.sparse import Bm25Encoder
from retrieval.types import (
    CacheStats,
    ChunkHit,
    DocumentInfo,
    DocumentPage,
    DocumentStatus,
    Fusion,
    IngestJob,
    IngestOutcome,
    IngestResult,
    OnChunksChanged,
    SearchMode,
    Upload,
)
from retrieval.vector_store import (
    Candidate,
    ChunkPoint,
    EdgeVectorStore,
    QdrantVectorStore,
    StoreCalls,
    VectorStore,
)

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "Bm25Encoder",
    "CacheConfig",
    "CacheStats",
    "Candidate",
    "Chunk",
    "ChunkHit",
    "ChunkPoint",
    "Chunker",
    "Delivery",
    "DocumentInfo",
    "DocumentNotFoundError",
    "DocumentPage",
    "DocumentRow",
    "DocumentStatus",
    "DocumentUploadRow",
    "EdgeVectorStore",
    "Embedder",
    "ExtractedText",
    "Fusion",
    "InProcessIngestQueue",
    "IngestJob",
    "IngestOutcome",
    "IngestQueue",
    "IngestQueueFullError",
    "IngestQueueUnavailableError",
    "IngestResult",
    "InvalidCursorError",
    "InvalidDocumentError",
    "InvalidRequestError",
    "OnChunksChanged",
    "QdrantVectorStore",
    "RedisStreamsIngestQueue",
    "RetrievalError",
    "RetrievalService",
    "SearchMode",
    "SentenceTransformerEmbedder",
    "StoreCalls",
    "UnsupportedDocumentError",
    "Upload",
    "VectorStore",
    "VectorStoreOverloadedError",
    "VectorStoreUnavailableError",
    "extract_text",
    "load_tokenizer",
    "packaged_model_path",
]
