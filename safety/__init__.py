"""Input and output safety filters (filled by a later issue)."""
