"""A ``VectorStore`` on a Qdrant Edge shard served by a child process (the embedded default).

``qdrant-edge-py`` holds the GIL for the whole of each search, so threads alone
cannot keep a process's event loop free under a sustained search storm: every query
pauses token generation and every probe. Here the shard lives in a child process
that runs ``EdgeVectorStore``'s blocking calls, and this process only pickles
requests and answers over a socket pair:

- the child (``edge_child``) is started with ``python -m`` (a fresh interpreter, as
  multiprocessing's ``spawn`` would; forking a parent that holds torch's threads is
  unsafe) and imports only ``qdrant_edge`` and the store's own modules, so it starts
  in well under a second;
- requests carry an id and are pipelined: up to ``StoreCalls``' thread count are in
  flight at once, and the same bound refuses searches beyond it
  (``VectorStoreOverloadedError``, a 429);
- the child dies with this process: it exits when the socket closes (end of file),
  and a watchdog thread ends it if its parent is gone while a request runs;
- a child that dies fails the calls it held with ``VectorStoreUnavailableError`` (a
  503) at once, and the next call starts a new one, which reopens the shard;
- a child that hangs (a read unanswered for ``read_timeout_s``, a write for
  ``write_timeout_s``) is killed, which fails the calls it held likewise;
- ``close`` asks the child to flush and close the shard and waits for it to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.errors import VectorStoreUnavailableError
from retrieval.sparse import Bm25Encoder
from retrieval.types import Fusion, SearchMode
from retrieval.vector_store.base import (
    DEFAULT_COLLECTION_NAME,
    UPSERT_BATCH,
    Candidate,
    ChunkPoint,
    plan_search,
)
from retrieval.vector_store.edge_child import WRITE_OPS
from retrieval.vector_store.offload import StoreCalls

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    import numpy as np

# Points per message of an upsert: a message is pickled whole, so a large upsert goes
# over in pieces the child can write as they come.
_POINTS_PER_MESSAGE = 8 * UPSERT_BATCH
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0


class ProcessEdgeVectorStore:
    """A ``VectorStore`` whose Qdrant Edge shard is served by a child process."""

    def __init__(
        self,
        path: str | Path,
        *,
        collection_name: str = DEFAULT_COLLECTION_NAME,
        sparse_encoder: Bm25Encoder | None = None,
        calls: StoreCalls | None = None,
        read_timeout_s: float = 30.0,
        write_timeout_s: float = 300.0,
    ) -> None:
        """Configure the store; the child starts at ``ensure_ready``.

        Args:
            path: Folder holding the shards; this store's is ``path/collection_name``.
            collection_name: Name of the shard holding every tenant's chunks.
            sparse_encoder: Makes the ``sparse`` vectors; default BM25 with k1=1.2, b=0.75.
            calls: The threads that wait on the child; their count is the searches in
                flight at once. Default two, eight more waiting.
            read_timeout_s: Longest wait for a search, count or payloads; past it the
                child is taken as hung and killed (503 to the calls it held).
            write_timeout_s: Likewise for an open, upsert or delete.
        """
        self._folder = Path(path)
        self._timeouts = (read_timeout_s, write_timeout_s)
        self._collection = collection_name
        self._sparse = sparse_encoder or Bm25Encoder()
        self._calls = calls or StoreCalls(name="qdrant-edge-process")
        self._child: _Child | None = None
        self._dimension: int | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def collection_name(self) -> str:
        return self._collection

    @property
    def sparse_encoder(self) -> Bm25Encoder:
        """The encoder of the ``sparse`` vectors (the chunk cache ranks with the same one)."""
        return self._sparse

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs (tests end it to prove a restart)."""
        child = self._child
        return child.pid if child is not None and child.alive else None

    async def ensure_ready(self, dimension: int) -> None:
        await self._calls.write(self._open, dimension)

    def _open(self, dimension: int) -> None:
        with self._lock:
            if self._closed:
                raise VectorStoreUnavailableError("the vector store is closed")
            self._dimension = dimension
        self._call("open", dimension)

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        for start in range(0, len(points), _POINTS_PER_MESSAGE):
            await self._write("upsert", points[start : start + _POINTS_PER_MESSAGE])

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        if not tenant_id:
            raise ValueError("tenant_id is required for every vector store query")
        await self._write("delete", tenant_id, document_id, frozenset(keep_ids))

    async def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        collection: str | None = None,
        score_floor: float | None = None,
        *,
        text: str | None = None,
        mode: SearchMode = SearchMode.DENSE,
        fusion: Fusion = Fusion.RRF,
    ) -> list[Candidate]:
        plan = plan_search(
            self._sparse, tenant_id, vector, k, collection, score_floor, text, mode, fusion
        )
        if plan is None:
            return []
        found: list[Candidate] = await self._read("search", plan)
        return found

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        if not tenant_id:
            raise ValueError("tenant_id is required for every vector store query")
        found: int = await self._read("count", tenant_id, document_id)
        return found

    async def payloads(
        self, tenant_id: str, document_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        if not tenant_id:
            raise ValueError("tenant_id is required for every vector store query")
        found: dict[str, dict[str, Any]] = await self._read("payloads", tenant_id, document_id)
        return found

    async def check_health(self) -> None:
        # NOTE: not on a search thread, so a probe never waits behind a storm; the
        # child answers it on its receiving thread (the shard's counters, microseconds).
        child = self._child
        if self._closed or self._dimension is None or child is None or not child.alive:
            raise VectorStoreUnavailableError("the Qdrant Edge process is not running")
        await asyncio.wrap_future(child.submit("health"))

    async def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        await self._calls.write(self._stop)
        self._calls.shutdown()

    def _stop(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop()

    async def _read(self, op: str, *args: Any) -> Any:
        if self._closed:
            raise VectorStoreUnavailableError("the vector store is closed")
        return await self._calls.read(self._call, op, *args)

    async def _write(self, op: str, *args: Any) -> Any:
        if self._closed:
            raise VectorStoreUnavailableError("the vector store is closed")
        return await self._calls.write(self._call, op, *args)

    def _call(self, op: str, *args: Any) -> Any:
        """Run one op in the child (starting one if none runs) and wait for its answer.

        Runs on a ``StoreCalls`` thread: the wait releases the GIL. A child that does
        not answer in time is hung: it is killed, and every call it held gets a 503.
        """
        child = self._running()
        timeout_s = self._timeouts[op in WRITE_OPS]
        try:
            return child.submit(op, *args).result(timeout_s)
        except FutureTimeoutError:
            reason = f"the Qdrant Edge process did not answer {op!r} in {timeout_s:g} s"
            child.kill(reason)
            raise VectorStoreUnavailableError(reason) from None

    def _running(self) -> _Child:
        with self._lock:
            if self._closed:
                raise VectorStoreUnavailableError("the vector store is closed")
            if self._dimension is None:
                raise VectorStoreUnavailableError("the Qdrant Edge shard is not open")
            child = self._child
            if child is not None and child.alive:
                return child
            if child is not None:
                child.stop()  # reap the dead one
            # NOTE: a fresh child opens the shard before any other call reaches it; the
            # dead one's folder lock went with its process.
            child = _Child.start(self._folder, self._collection, self._sparse)
            try:
                child.submit("open", self._dimension).result(_START_TIMEOUT_S)
            except BaseException:
                child.stop()
                raise
            self._child = child
            return child


class _Child:
    """One child process and the parent's end of its socket."""

    def __init__(self, process: subprocess.Popen[bytes], connection: Connection) -> None:
        self.pid = process.pid
        self._process = process
        self._connection = connection
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._pending_lock = threading.Lock()
        self._ids = 0
        self._dead: str | None = None
        self._reader = threading.Thread(
            target=self._receive, name=f"qdrant-edge-process-{self.pid}", daemon=True
        )
        self._reader.start()

    @classmethod
    def start(cls, folder: Path, collection: str, encoder: Bm25Encoder) -> _Child:
        mine, theirs = socket.socketpair()
        env = dict(os.environ)
        # The child finds this package as the parent did (a checkout, not an install).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            process = subprocess.Popen(  # noqa: S603 - our interpreter, our code
                [sys.executable, "-m", "retrieval.vector_store.edge_child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            theirs.close()
        connection = Connection(mine.detach())
        child = cls(process, connection)
        child.submit("config", str(folder), collection, encoder)
        return child

    @property
    def alive(self) -> bool:
        return self._dead is None

    def submit(self, op: str, *args: Any) -> Future[Any]:
        """Send one request; its future holds the child's answer."""
        future: Future[Any] = Future()
        with self._pending_lock:
            if self._dead is not None:
                raise VectorStoreUnavailableError(self._dead)
            self._ids += 1
            request_id = self._ids
            self._pending[request_id] = future
        try:
            with self._send_lock:
                self._connection.send((request_id, op, args))
        except OSError as exc:
            self._fail(f"the Qdrant Edge process is gone ({exc})")
        return future

    def _receive(self) -> None:
        while True:
            try:
                request_id, ok, value = self._connection.recv()
            except (EOFError, OSError):
                code = self._process.poll()
                self._fail(f"the Qdrant Edge process exited (code {code})")
                return
            with self._pending_lock:
                future = self._pending.pop(request_id, None)
            if future is None:
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _fail(self, reason: str) -> None:
        with self._pending_lock:
            if self._dead is None:
                self._dead = reason
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(VectorStoreUnavailableError(reason))

    def kill(self, reason: str) -> None:
        """End a hung child at once; the calls it held fail with ``reason``."""
        self._fail(reason)  # first: the reader's end of file must not name another reason
        with contextlib.suppress(OSError):
            self._process.kill()

    def stop(self) -> None:
        """Close the shard and end the child; kill it if it does not end in time."""
        if self.alive:
            with contextlib.suppress(Exception):
                self.submit("close").result(_STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self._connection.close()
        try:
            self._process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(_STOP_TIMEOUT_S)
        self._fail("the Qdrant Edge process was stopped")
