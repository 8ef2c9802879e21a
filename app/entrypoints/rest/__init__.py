"""The REST API, a folder per resource: its controller and its wire schemas."""
