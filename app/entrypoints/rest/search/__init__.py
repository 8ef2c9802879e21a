"""REST: retrieval-only search."""
