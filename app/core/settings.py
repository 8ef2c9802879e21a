"""Typed settings, one section per concern, read from ``RAGSERVE_*`` variables.

Every section is its own ``BaseSettings`` with a prefix, so a variable's name says
where it lands: ``RAGSERVE_DATABASE_URL`` is ``Settings.database.url``. Nothing
else in ragserve reads the environment; ``get_settings()`` is the one loader.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.auth.settings import AuthSettings
from app.batches.settings import BatchSettings
from app.console.settings import ConsoleSettings
from app.labeling.settings import LabelingSettings
from app.ratelimit.settings import RateLimitSettings
from app.routing.settings import RoutingSettings


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface ``ragserve serve`` binds to."""
    port: int = 8000
    """Port ``ragserve serve`` listens on."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Largest request body accepted (uploads included); larger gets 413."""
    max_message_chars: int = 8000
    """Longest user message accepted, in characters; longer gets 422."""
    ws_init_timeout_s: float = 10.0
    """Seconds a WebSocket may wait before ``connection_init``; then it is closed 4408."""
    ws_max_turns: int = 4
    """Turns one WebSocket may run at once; more get an ``error`` with code ``too_many_turns``."""
    ws_max_message_bytes: int = 64 * 1024
    """Largest WebSocket frame accepted; larger closes the socket with 4400."""
    log_level: str = "info"
    """Level of the structured logs."""
    drain_grace_s: float = Field(default=20.0, ge=0)
    """Seconds running turns may take to finish after SIGTERM (``/readyz`` fails and new
    turns get 503 meanwhile); then they end with finish reason ``interrupted``."""
    answer_heartbeat_s: float = Field(default=5.0, gt=0)
    """Seconds between refreshes of the answers this process is streaming (their text
    so far is stored each time: what a crash can lose)."""
    answer_stale_s: float = Field(default=30.0, gt=0)
    """A ``streaming`` answer nobody refreshed for this long belonged to a dead process
    and is marked ``interrupted``; keep it several heartbeats long."""


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_DATABASE_", extra="ignore")

    url: str | None = None
    """SQLAlchemy URL; default a SQLite file in the data dir (``postgresql+asyncpg://...``)."""
    echo: bool = False
    """Log every SQL statement (debugging only)."""


class QdrantSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_QDRANT_", extra="ignore")

    url: str | None = None
    """Qdrant server URL; unset means an embedded engine in the data dir (one process owns it)."""
    engine: Literal["edge", "edge-inprocess", "local"] = "edge"
    """Embedded engine when ``url`` is unset: ``edge`` (Qdrant Edge in a child process, in
    ``<data_dir>/qdrant_edge``), ``edge-inprocess`` (the same shard in this process: its
    searches hold the GIL, so a storm slows tokens) or ``local`` (qdrant-client's local
    mode, a Python scan, in ``<data_dir>/qdrant``)."""
    api_key: str | None = None
    """API key for a Qdrant server."""
    collection: str = "ragserve_chunks_v2"
    """Qdrant collection holding every tenant's chunks (dense and sparse named vectors;
    ``ragserve_chunks``, the older dense-only one, is not read: re-ingest into this one)."""


class EmbeddingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_EMBEDDING_", extra="ignore")

    model_path: str | None = None
    """A local sentence-transformers folder; unset means the packaged all-MiniLM-L6-v2."""
    device: str = "cpu"
    """Torch device for the embedder."""
    batch_size: int = 32
    """Chunks embedded per model call at ingestion."""


class RetrievalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_RETRIEVAL_", extra="ignore")

    top_k: int = 4
    """Chunks retrieved per turn."""
    score_floor: float = 0.2
    """Chunks scoring below this cosine similarity are not used as sources."""
    chunk_tokens: int = 200
    """Chunk size in embedder tokens."""
    chunk_overlap: int = 40
    """Tokens shared by neighbouring chunks."""
    heading_context: bool = True
    """Embed each chunk with the headings above it (its heading path); documents
    ingested before a change keep their vectors until re-ingested."""
    max_upload_files: int = 20
    """Files accepted in one upload."""
    query_batch_window_ms: float = 3.0
    """How long a search waits to share its query's embedding call with concurrent ones."""
    query_max_batch: int = Field(default=32, ge=1)
    """Most queries embedded in one model call."""
    store_threads: int = Field(default=2, ge=1)
    """Vector store searches that run at once, each on its own thread (never on the event loop)."""
    store_max_waiting: int = Field(default=8, ge=0)
    """Vector store searches that may wait for a thread; more get 429 with Retry-After."""


class GenerationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_GENERATION_", extra="ignore")

    model_path: str | None = None
    """A local Hugging Face model folder; unset means the packaged SmolLM2-135M-Instruct."""
    dtype: str = "auto"
    """``auto`` (bf16 on CUDA; on a CPU fp32 or bf16, timed), ``bfloat16``, ``float32``."""
    device: str = "cpu"  # torch device for generation
    max_tokens: int = 256
    """Default ``max_tokens`` of a turn."""
    max_tokens_limit: int = 1024
    """Largest ``max_tokens`` a client may ask for."""
    decode_weights: Literal["model", "int8", "int4"] = "model"
    """``int8``: the batching engine also keeps INT8 projections (CPU) and decodes on them,
    faster with few requests; ``int4``: 4-bit ones too (Q4_1), steps of <= 4 rows."""
    decode_attention: Literal["auto", "kernel", "sdpa"] = "auto"
    prefill_attention: Literal["auto", "kernel", "sdpa"] = "auto"
    """CPU attention of decode rows, of prompt chunks: C kernels built here (``auto``: SDPA
    where one fails; ``kernel``: refuse to start without), ``sdpa``. docs/engine.md."""
    speculate_tokens: int = Field(default=4, ge=0, le=16)
    """Speculative decoding (batching engine, a lone request, greedy or sampled without
    a seed): each step checks up to this many tokens guessed from its own prompt and
    answer (``inference/speculation.py``); 0 is off. 1.2x a lone request's tokens/s."""
    engine: Literal["batching", "sequential"] = "batching"
    """``batching``: continuous batching (many requests share each forward pass);
    ``sequential``: one request at a time (a baseline, and for debugging)."""
    max_running: int = 32
    """Sequences the batching engine decodes together (its batch slots)."""
    max_waiting: int = 256
    """Requests that may wait for a slot; more get 429 with Retry-After."""
    max_waiting_tokens: int = 262_144
    """Prompt tokens that may wait for a slot; more get 429 with Retry-After."""
    batch_share: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of ``max_running`` that batch-class sequences (batch jobs' lines) may
    hold; they also take only what online requests leave and are preempted for them."""
    batch_prefill_tokens: int = Field(default=32, ge=1)
    """Prompt tokens batch-class sequences may prefill per step while an online
    sequence runs (the whole ``prefill_chunk_tokens`` otherwise)."""
    batch_slots_under_load: int = Field(default=2, ge=1)
    """Batch-class sequences admitted while any online request runs or waits (the
    share above otherwise): on a CPU every extra row slows each online step."""
    prefill_chunk_tokens: int = 256
    """Prompt tokens prefilled per engine step (four times that while nothing decodes)."""
    max_seq_len: int = 2048
    """Longest sequence (prompt plus answer) a batch slot holds."""
    prefix_cache_mb: int = 256
    """Memory for the KV state of shared prompt prefixes (0 turns the cache off)."""
    history_token_budget: int = 600
    """Tokens of earlier turns put into the prompt (the oldest are left out first)."""
    instructions_token_budget: int = 400
    """Tokens of a caller's system and developer messages (OpenAI API); more is a 400."""
    context_token_budget: int = 1200
    """Tokens of retrieved sources put into the prompt."""
    temperature: float = 0.0
    """Default temperature (0 is greedy)."""
    repetition_penalty: float = 1.0
    """Default penalty on tokens the answer already used (1 is none; docs/engine.md)."""
    no_repeat_ngram: int = Field(default=4, ge=0, le=64)
    """An answer never repeats a run of this many of its tokens (0: off; docs/engine.md)."""
    prompt_bias: float = Field(default=3.0, ge=0.0, le=10.0)
    """Added to the prompt's tokens' logits in turns with sources (0: off; docs/engine.md)."""
    threads: int | None = None
    """Torch intra-op threads; unset leaves torch's default."""
    cache_dir: Path | None = None
    """Where the packaged GGUF model is cached; default ``<data_dir>/models``."""
    backend_urls: str = ""
    """Comma-separated OpenAI-compatible base URLs (``ragserve inference`` nodes, vLLM,
    TGI, llama.cpp); set, this node loads no model and routes every turn to them."""
    backend_model: str | None = None
    """The model name sent to ``backend_urls``; unset asks them (``GET /v1/models``)."""
    backend_api_key: SecretStr | None = None
    """Bearer key for ``backend_urls``, when they need one."""
    model_name: str | None = None
    """The public name of this node's default model; unset: the loaded model's id, or
    ``smollm2-135m-instruct`` for ``backend_urls``."""

    @property
    def backend_url_list(self) -> list[str]:
        return [url.strip() for url in self.backend_urls.split(",") if url.strip()]


class SafetySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_SAFETY_", extra="ignore")

    enabled: bool = True
    """Run the input, retrieval and output filters on every turn."""
    policy_file: Path | None = None
    """JSON ``{"default": {...}, "<tenant id>": {...}}`` of per-tenant policies
    (filters, actions per category, blocked topics); unset means the defaults."""
    similarity: bool = True
    """Compare questions with known attacks using the embedding model (adds ~20 ms)."""
    policy_refresh_s: float = Field(default=5.0, gt=0)
    """How often a node reads tenants' own policies (set by their admins in the
    console) for changes; the node where one is set applies it at once."""


class RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_REDIS_", extra="ignore")

    url: str | None = None
    """Redis URL (``redis://host:6379/0``); unset keeps hot conversation state, rate
    limits, queues and token replay in-process (one API process only)."""
    key_prefix: str = "ragserve:"
    """Prefix of every Redis key ragserve writes, so several deployments can share a server."""
    max_connections: int = 64
    """Connections this process opens to Redis at most; more requests wait for one."""
    pool_timeout_s: float = 5.0
    """Seconds a request waits for a free Redis connection before failing."""
    failure_cooldown_s: float = Field(default=5.0, ge=0)
    """After a Redis call times out or loses its connection, Redis is not tried for
    this long: every caller degrades at once (rate limits per process, hot state from
    SQL, no resume) instead of waiting out a timeout per call (0: always try)."""


class HotStateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_HOT_STATE_", extra="ignore")

    enabled: bool = True
    """Serve the header and recent messages of active conversations from the hot state
    (Redis when ``RAGSERVE_REDIS_URL`` is set, else an in-process LRU) instead of SQL."""
    ttl_s: float = Field(default=900.0, gt=0)
    """Seconds a conversation nobody reads or writes stays hot."""
    max_messages: int = Field(default=32, ge=1)
    """Newest messages kept per hot conversation (history loads read at most 20)."""
    max_conversations: int = Field(default=2048, ge=1)
    """Conversations the in-process hot state holds (least recently used go first)."""
    write_lease_s: float = Field(default=10.0, gt=0)
    """Seconds a conversation write may take; a writer silent longer is presumed dead
    and readers rebuild the entry from SQL."""
    timeout_s: float = Field(default=1.0, gt=0)
    """Longest wait for Redis before reading SQL instead."""


class ResumeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_RESUME_", extra="ignore")

    ttl_s: float = Field(default=300.0, gt=0)
    """Seconds the tokens of a turn stay replayable after its last token."""
    max_events: int = Field(default=4096, ge=16)
    """Tokens buffered per turn; a longer turn keeps its newest ones only."""
    grace_s: float = Field(default=30.0, gt=0)
    """Seconds a turn keeps running after its socket went away with nobody resuming
    it; then it is cancelled and stored as cancelled."""


class ChunkCacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_CHUNK_CACHE_", extra="ignore")

    enabled: bool = True
    """Keep hot chunks in a node-local FAISS cache in front of the vector store."""
    max_mb: int = Field(default=256, ge=1)
    """Memory budget of the cache in MiB (chunks, their vectors and recent queries)."""
    similarity_threshold: float = Field(default=0.85, ge=-1.0, le=1.0)
    """Least cosine similarity to a recent query for its candidate set to be reused."""
    candidate_multiplier: int = Field(default=5, ge=1)
    """A cache miss asks the vector store for ``k`` times this many candidates."""
    ttl_s: float = Field(default=300.0, gt=0)
    """Seconds a cached candidate set is used: bounds how stale a node's cache can be
    after another node changed a document (this node's own changes invalidate at once)."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """Where FAISS searches: ``auto`` is the GPU when faiss-gpu sees one."""
    prefetch_queue: int = Field(default=32, ge=1)
    """Prefetches that may wait; more are dropped."""
    max_new_term_idf: float = Field(default=4.0, gt=0)
    """A sparse or hybrid query reuses a recent query's candidates only if every word it
    adds is common among the chunks the node holds (IDF at most this); rarer or unseen
    words go to the vector store, whose BM25 would rank them differently."""


class ResponseCacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_RESPONSE_CACHE_", extra="ignore")

    enabled: bool = False
    """Answer a repeated question from the cache instead of generating it again (only
    deterministic turns: greedy, or with a seed)."""
    semantic: bool = True
    """Also answer a paraphrase: same sources, context, model and settings, and a
    question at least ``threshold`` similar."""
    threshold: float = Field(default=0.94, ge=0.0, le=1.0)
    """Least cosine similarity of two questions for a semantic hit (see
    docs/benchmarks.md for the hit and wrong-hit rates behind the default)."""
    max_mb: int = Field(default=64, ge=1)
    """Memory budget of the in-process cache in MiB (Redis: its own maxmemory)."""
    ttl_s: float = Field(default=3600.0, gt=0)
    """Seconds an answer is served from the cache after it was generated."""
    max_per_scope: int = Field(default=64, ge=1)
    """Questions kept per semantic scope (same sources, context, model, settings)."""
    sampled_tenants: str = ""
    """Comma-separated tenant ids whose sampled answers (temperature > 0, no seed) are
    cached too."""

    @property
    def sampled_tenant_ids(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.sampled_tenants.split(",") if t.strip())


class IngestionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGSERVE_INGESTION_", extra="ignore")

    workers: int = 1
    """Ingestion workers of this process (embedding is CPU-bound: one per node is usual)."""
    stream: str = "ingest"
    """Redis stream of ingestion jobs, under ``RAGSERVE_REDIS_KEY_PREFIX``."""
    group: str = "ingest-workers"
    """Consumer group every node's ingestion workers join."""
    claim_idle_s: float = 60.0
    """Seconds after which a job nobody renewed (its worker died) goes to another worker."""
    max_deliveries: int = 5
    """Deliveries of a job before it is dead-lettered and its document marked failed."""
    max_queued: int = 1000
    """Documents waiting or being indexed; more uploads get 429 with Retry-After."""
    wait_timeout_s: float = 120.0
    """Longest ``POST /v1/documents?wait=true`` waits for the final status."""
    max_attempts: int = Field(default=3, ge=1)
    """Attempts at indexing one upload, each counted in SQL as it starts; a document
    whose attempts all died (it killed its worker) then ends ``failed``
    (``too_many_attempts``)."""
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    """Largest single document; a larger one is refused with 413 ``document_too_large``."""
    max_pages: int = Field(default=2000, ge=1)
    """Most pages of a PDF; more fails the document (``too_many_pages``)."""
    max_extracted_chars: int = Field(default=10_000_000, ge=1)
    """Most characters of text extracted from one document (``too_much_text``)."""
    extract_timeout_s: float = Field(default=60.0, gt=0)
    """Wall time of one document's extraction process before it is killed
    (``extraction_timeout``); its CPU time is capped likewise."""
    extract_memory_mb: int = Field(default=2048, ge=0)
    """Address space of the extraction process in MiB (0: unbounded)
    (``extraction_out_of_memory``)."""
    quota_bytes: int = Field(default=5 * 1024**3, ge=0)
    """Default per-tenant quota of stored document bytes (as uploaded); an upload past
    it gets 409 ``quota_exceeded``. ``ragserve tenants quota`` overrides it per tenant."""
    quota_documents: int = Field(default=100_000, ge=0)
    """Default per-tenant quota of stored documents (409 ``quota_exceeded`` past it)."""


class Settings(BaseSettings):
    """All of ragserve's settings."""

    model_config = SettingsConfigDict(env_prefix="RAGSERVE_", extra="ignore")

    data_dir: Path = Path("./data")
    """Where the SQLite file, Qdrant's local files and the model cache live."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    hot_state: HotStateSettings = Field(default_factory=HotStateSettings)
    resume: ResumeSettings = Field(default_factory=ResumeSettings)
    chunk_cache: ChunkCacheSettings = Field(default_factory=ChunkCacheSettings)
    response_cache: ResponseCacheSettings = Field(default_factory=ResponseCacheSettings)
    ingestion: IngestionSettings = Field(default_factory=IngestionSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    labeling: LabelingSettings = Field(default_factory=LabelingSettings)

    @property
    def database_url(self) -> str:
        """The configured URL, or the default SQLite file under the data dir."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ragserve.db').resolve()}"

    @property
    def qdrant_path(self) -> Path:
        return (self.data_dir / "qdrant").resolve()

    @property
    def model_cache_dir(self) -> Path:
        return (self.generation.cache_dir or self.data_dir / "models").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
