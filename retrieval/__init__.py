"""Documents, chunking, embedding and vector search for ragserve tenants.

NOTE: the names below are imported on first use (``kernel.lazy``), so that a
caller of one light module does not load every heavy one.
"""

from typing import TYPE_CHECKING

from kernel.errors import InvalidCursorError
from kernel.lazy import lazy_exports

if TYPE_CHECKING:
    from retrieval.chunking import Chunk, Chunker
    from retrieval.embedding import (
        Embedder,
        SentenceTransformerEmbedder,
        load_tokenizer,
        packaged_model_path,
    )
    from retrieval.errors import (
        DocumentNotFoundError,
        DocumentTooLargeError,
        IngestQueueFullError,
        IngestQueueUnavailableError,
        InvalidDocumentError,
        InvalidRequestError,
        QuotaExceededError,
        RetrievalError,
        UnsupportedDocumentError,
        VectorStoreOverloadedError,
        VectorStoreUnavailableError,
    )
    from retrieval.extract import (
        SUPPORTED_CONTENT_TYPES,
        ExtractedText,
        ExtractLimits,
        extract_text,
    )
    from retrieval.ingest_queue import (
        Delivery,
        IngestQueue,
        InProcessIngestQueue,
        RedisStreamsIngestQueue,
    )
    from retrieval.models import DocumentRow, DocumentUploadRow
    from retrieval.quotas import QuotaStore
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
        IngestionQuota,
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
        ProcessEdgeVectorStore,
        QdrantVectorStore,
        StoreCalls,
        VectorStore,
    )
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "chunking": (
                "Chunk",
                "Chunker",
            ),
            "embedding": (
                "Embedder",
                "SentenceTransformerEmbedder",
                "load_tokenizer",
                "packaged_model_path",
            ),
            "errors": (
                "DocumentNotFoundError",
                "DocumentTooLargeError",
                "IngestQueueFullError",
                "IngestQueueUnavailableError",
                "InvalidDocumentError",
                "InvalidRequestError",
                "QuotaExceededError",
                "RetrievalError",
                "UnsupportedDocumentError",
                "VectorStoreOverloadedError",
                "VectorStoreUnavailableError",
            ),
            "extract": (
                "SUPPORTED_CONTENT_TYPES",
                "ExtractedText",
                "ExtractLimits",
                "extract_text",
            ),
            "ingest_queue": (
                "Delivery",
                "IngestQueue",
                "InProcessIngestQueue",
                "RedisStreamsIngestQueue",
            ),
            "models": (
                "DocumentRow",
                "DocumentUploadRow",
            ),
            "quotas": ("QuotaStore",),
            "search": ("CacheConfig",),
            "service": ("RetrievalService",),
            "sparse": ("Bm25Encoder",),
            "types": (
                "CacheStats",
                "ChunkHit",
                "DocumentInfo",
                "DocumentPage",
                "DocumentStatus",
                "Fusion",
                "IngestionQuota",
                "IngestJob",
                "IngestOutcome",
                "IngestResult",
                "OnChunksChanged",
                "SearchMode",
                "Upload",
            ),
            "vector_store": (
                "Candidate",
                "ChunkPoint",
                "EdgeVectorStore",
                "ProcessEdgeVectorStore",
                "QdrantVectorStore",
                "StoreCalls",
                "VectorStore",
            ),
        },
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
    "DocumentTooLargeError",
    "DocumentUploadRow",
    "EdgeVectorStore",
    "Embedder",
    "ExtractLimits",
    "ExtractedText",
    "Fusion",
    "InProcessIngestQueue",
    "IngestJob",
    "IngestOutcome",
    "IngestQueue",
    "IngestQueueFullError",
    "IngestQueueUnavailableError",
    "IngestResult",
    "IngestionQuota",
    "InvalidCursorError",
    "InvalidDocumentError",
    "InvalidRequestError",
    "OnChunksChanged",
    "ProcessEdgeVectorStore",
    "QdrantVectorStore",
    "QuotaExceededError",
    "QuotaStore",
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
