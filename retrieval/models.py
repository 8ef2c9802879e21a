"""SQL rows owned by retrieval: one per ingested document, plus pending uploads.

The chunks themselves live in the vector store; ``documents`` is the record of what
was ingested, its content hash (so re-ingesting an unchanged file is a no-op) and
its status. ``document_uploads`` holds the bytes of a document waiting for an
ingestion worker, where any worker node can read them; the row goes once the
document is ``ready`` or ``failed``. ``ingestion_quotas`` overrides one tenant's
limits on stored documents and bytes (the defaults are configured).

Every timestamp is UTC-aware, on SQLite too (``kernel.orm.UtcDateTime``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.ids import new_id
from kernel.orm import Base, utcnow


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "collection", "name", name="uq_documents_tenant_collection_name"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # NOTE: no foreign key to tenants: that table belongs to another domain package,
    # which this one never imports; the API layer only passes an authenticated
    # tenant's id.
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    collection: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why the document failed, in words safe to show a client (details are logged)."""
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Why the document failed, as a code (``retrieval.errors.ErrorCode``)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DocumentUploadRow(Base):
    __tablename__ = "document_uploads"

    document_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    # The client's content type, as sent (the document row holds the resolved one).
    content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Deliveries to a worker so far, counted before each one starts: a document
    # that kills its worker is not handed out again past the configured limit.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class IngestionQuotaRow(Base):
    """One tenant's ingestion limits; ``NULL`` keeps the configured default."""

    __tablename__ = "ingestion_quotas"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    max_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_documents: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
