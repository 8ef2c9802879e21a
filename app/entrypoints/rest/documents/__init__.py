"""REST: document ingestion, listing and deletion."""
