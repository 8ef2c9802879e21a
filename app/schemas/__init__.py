"""Wire schemas: what clients send and receive, apart from domain types."""
