"""Bounds on tenant ids, document names and collections (matching DocumentRow's columns)
and on searches."""

from __future__ import annotations

from retrieval.errors import InvalidRequestError
from retrieval.types import Fusion, SearchMode, SearchRequest

MAX_TENANT_ID_LENGTH = 36
MAX_NAME_LENGTH = 512
MAX_COLLECTION_LENGTH = 128
MAX_QUERY_CHARS = 4096
MAX_K = 100


def check_tenant(tenant_id: str) -> None:
    if not tenant_id or len(tenant_id) > MAX_TENANT_ID_LENGTH:
        raise InvalidRequestError(f"tenant id must be 1 to {MAX_TENANT_ID_LENGTH} characters")


def check_label(field: str, value: str, max_length: int) -> str:
    """Validate a document name or collection; returns it stripped of outer spaces."""
    value = value.strip()
    if not value:
        raise InvalidRequestError(f"{field} must not be empty")
    if len(value) > max_length:
        raise InvalidRequestError(f"{field} is longer than {max_length} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidRequestError(f"{field} must not contain control characters")
    return value


def search_request(
    tenant_id: str,
    query: str,
    k: int,
    collection: str | None,
    score_floor: float | None,
    mode: SearchMode | str,
    fusion: Fusion | str,
) -> SearchRequest:
    if not query.strip():
        raise InvalidRequestError("query must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequestError(f"query is longer than {MAX_QUERY_CHARS} characters")
    if not 1 <= k <= MAX_K:
        raise InvalidRequestError(f"k must be between 1 and {MAX_K}")
    if collection is not None:
        collection = check_label("collection", collection, MAX_COLLECTION_LENGTH)
    if mode not in SearchMode.__members__.values():
        raise InvalidRequestError(f"mode must be one of {', '.join(SearchMode)}, not {mode!r}")
    if fusion not in Fusion.__members__.values():
        raise InvalidRequestError(f"fusion must be one of {', '.join(Fusion)}, not {fusion!r}")
    mode, fusion = SearchMode(mode), Fusion(fusion)
    return SearchRequest(tenant_id, query, k, collection, score_floor, mode, fusion)
