"""The ingestion queue: one interface, an in-process and a Redis Streams implementation.

``base`` holds the interface (``IngestQueue``) and the ``Delivery`` it hands out;
``memory`` keeps entries in this process (the embedded default), ``redis`` on a
Redis stream that every worker node reads. Which one serves is configuration.
"""

from retrieval.ingest_queue.base import Delivery, IngestQueue
from retrieval.ingest_queue.memory import InProcessIngestQueue
from retrieval.ingest_queue.redis import RedisStreamsIngestQueue

__all__ = [
    "Delivery",
    "InProcessIngestQueue",
    "IngestQueue",
    "RedisStreamsIngestQueue",
]
