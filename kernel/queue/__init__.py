"""The work queue: one interface, an in-process and a Redis Streams implementation.

``base`` holds the interface (``WorkQueue``), the ``Delivery`` it hands out and the
``JobKind`` that says what a queue carries; ``memory`` keeps entries in this
process (the embedded default), ``redis`` on a Redis stream read by one consumer
group. Ingestion and batch jobs each run from one (docs/ingestion.md, docs/batches.md).
"""
