"""The child side of ``ProcessEdgeVectorStore``: a Qdrant Edge shard served over a socket.

Started by the parent as ``python -m retrieval.vector_store.edge_child FD``; it
imports only ``qdrant_edge`` and the store's own modules, answers pickled requests
``(id, op, args)`` with ``(id, ok, value)``, runs searches and counts on two threads
and writes on one, and exits when the socket closes or its parent is gone.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from retrieval.errors import RetrievalError, VectorStoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from retrieval.vector_store.base import Candidate, SearchPlan

_WATCH_S = 1.0
_LOCK_WAIT_S = 10.0
# Ops the child answers on its receiving thread, never behind a search.
_INLINE_OPS = frozenset({"health"})
# Ops that change the shard (a longer timeout; one thread).
WRITE_OPS = frozenset({"open", "upsert", "delete", "close"})


def _watch_parent(parent: int) -> None:
    """End this process once its parent is gone, even in the middle of a request.

    NOTE: not ``PR_SET_PDEATHSIG``: Linux sends it when the parent's *thread* that
    started the child ends, and the parent starts children from pool threads.
    """
    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    os._exit(0)


CHILD_NICENESS = 5
"""How much lower than the API process's the child's CPU priority is."""


def serve(fd: int) -> None:
    """The child's loop: answer requests from the parent until ``close`` or end of file.

    Searches and counts run on two threads, writes on one (as ``StoreCalls`` does in
    a single process); health checks are answered here at once.
    """
    # NOTE: imported here, so the parent never loads the engine it does not run.
    from retrieval.vector_store.edge import EdgeVectorStore

    watchdog = threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True)
    watchdog.start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is the parent's to handle
    # NOTE: on a busy machine the scheduler gives the API process (its tokens and
    # probes) the CPU before a search: a storm of searches then slows searches, not
    # streams.
    os.nice(CHILD_NICENESS)
    connection = Connection(fd)
    send_lock = threading.Lock()
    reads = ThreadPoolExecutor(2, thread_name_prefix="edge-read")
    writes = ThreadPoolExecutor(1, thread_name_prefix="edge-write")
    store: EdgeVectorStore | None = None
    ops: dict[str, Callable[..., Any]] = {}

    def answer(request_id: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[int, bool, Any] = (request_id, True, fn(*args))
        except Exception as exc:
            reply = (request_id, False, _portable(exc))
        with send_lock, contextlib.suppress(OSError):
            connection.send(reply)

    while True:
        try:
            request_id, op, args = connection.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if op == "config":
            folder, collection, encoder = args
            store = EdgeVectorStore(folder, collection_name=collection, sparse_encoder=encoder)
            ops = _ops(store)
            answer(request_id, lambda: None, ())
        elif op == "close":
            writes.submit(answer, request_id, ops.get("close", lambda: None), ()).result()
            break
        elif op in _INLINE_OPS:
            answer(request_id, ops[op], args)
        else:
            pool = writes if op in WRITE_OPS else reads
            pool.submit(answer, request_id, ops[op], args)
    reads.shutdown(wait=True)
    writes.shutdown(wait=True)
    if store is not None:
        with contextlib.suppress(Exception):
            ops["close"]()
    connection.close()


def _ops(store: Any) -> dict[str, Callable[..., Any]]:
    """The child's ops: ``EdgeVectorStore``'s blocking halves (what its threads run)."""
    from retrieval.vector_store.edge import tenant_filter

    def open_shard(dimension: int) -> None:
        # NOTE: a predecessor child (of a parent just killed and restarted) may still
        # hold the folder's lock for the moment it takes to notice and exit.
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                store._open(dimension)
                return
            except RetrievalError as exc:
                if "WouldBlock" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def health() -> None:
        store.shard.info()

    def delete(tenant_id: str, document_id: str, keep_ids: frozenset[str]) -> None:
        import qdrant_edge as qe

        where = tenant_filter(tenant_id, document_id=document_id, keep_ids=keep_ids)
        store._update(qe.UpdateOperation.delete_points_by_filter(where))

    def search(plan: SearchPlan) -> list[Candidate]:
        found: list[Candidate] = store._search(plan)
        return found

    return {
        "open": open_shard,
        "upsert": store._upsert,
        "delete": delete,
        "search": search,
        "count": lambda tenant_id, document_id: store._count(
            tenant_filter(tenant_id, document_id=document_id)
        ),
        "payloads": lambda tenant_id, document_id: store._payloads(
            tenant_filter(tenant_id, document_id=document_id)
        ),
        "health": health,
        "close": store._close,
    }


def _portable(exc: Exception) -> Exception:
    """The exception as the parent can unpickle it (the engine's own as unavailability)."""
    if isinstance(exc, (RetrievalError, ValueError, TypeError)):
        exc.__cause__ = exc.__context__ = None
        exc.__traceback__ = None
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
            return exc
    return VectorStoreUnavailableError(f"Qdrant Edge failed: {exc}")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
