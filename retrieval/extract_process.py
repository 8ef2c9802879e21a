"""Text extraction in a child process, with a wall-time, CPU and memory cap.

Parsing an upload runs third-party parsers (pypdf, BeautifulSoup) on bytes anyone
with the write scope can send: a crafted file can loop, eat memory or crash the
interpreter. So each document is read in its own process, forked per document from
a small extraction server that this process starts once (a fork costs
milliseconds; a fresh interpreter importing the parsers costs far more). The
server imports ``retrieval.extract`` and nothing else of the project, and forks
from a single thread, which is why neither the worker itself nor
``multiprocessing``'s forkserver is used (the latter re-imports the main module,
the whole app, in every child).

A child past its wall time is killed by the server; its own CPU-time and
address-space limits stop it even when nobody is left to kill it, and it dies
with its server, which dies with the process that started it. Whatever a child
does, the caller gets text or an ``InvalidDocumentError`` whose message and
``code`` are safe to show a client; the detail goes to the log.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any, cast

import structlog

from retrieval.errors import FAILURES, InvalidDocumentError, UnsupportedDocumentError
from retrieval.extract import ExtractedText, ExtractLimits, extract_text

_log = structlog.get_logger(__name__)

_HEADER = struct.Struct("!Q")
_SERVER_MARGIN_S = 10.0
"""Beyond a job's own time limit, how long the caller waits for the server's reply."""


class _Server:
    """One extraction server, used by one job at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def run(self, request: tuple[Any, ...], timeout_s: float) -> tuple[Any, ...]:
        # NOTE: a second try on a lost server: a document never kills the server (its
        # child does the parsing), but the server dies with the thread that started
        # it (PR_SET_PDEATHSIG), and a pool may retire that thread.
        with self._lock:
            for attempt in (1, 2):
                process = self._started()
                try:
                    _write(cast("IO[bytes]", process.stdin), request)
                    return tuple(
                        _read(cast("IO[bytes]", process.stdout), timeout_s + _SERVER_MARGIN_S)
                    )
                except (OSError, EOFError, TimeoutError) as exc:
                    _log.warning("extraction_server_lost", error=repr(exc), attempt=attempt)
                    self._stop()
                    if isinstance(exc, TimeoutError):
                        break
            return ("failed", "the extraction server stopped answering", "extraction_crashed")

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = dict(os.environ)
        # The child finds this package as the parent did (a checkout, not an install);
        # ``retrieval/__init__`` loads nothing until asked, so it starts small and fast.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our code
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        return self._process

    def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.kill()
            self._process.wait()
            self._process = None


_SERVER = _Server()


def extract_isolated(
    data: bytes, name: str, content_type: str | None, limits: ExtractLimits
) -> ExtractedText:
    """Extract a document's text in a child process within ``limits``. Blocking.

    Raises:
        UnsupportedDocumentError: Not a type we read.
        InvalidDocumentError: Unreadable, or past a cap; ``code`` says which
            (``too_many_pages``, ``too_much_text``, ``extraction_timeout``,
            ``extraction_out_of_memory``, ``extraction_crashed``...).
    """
    reply = _SERVER.run((data, name, content_type, limits), limits.timeout_s)
    kind = reply[0]
    if kind == "ok":
        return ExtractedText(text=reply[1], content_type=reply[2])
    if kind == "unsupported":
        raise UnsupportedDocumentError(reply[1])
    if kind == "invalid":
        raise InvalidDocumentError(reply[1], reply[2])
    _log.warning("extraction_failed", document=name, code=reply[2], error=reply[1])
    raise InvalidDocumentError(f"{name!r}: {FAILURES[reply[2]]}", reply[2])


def serve() -> None:
    """The extraction server's loop: a request on stdin, a forked child, a reply on stdout."""
    _die_with_parent()
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print in a parser must not corrupt the replies
    while True:
        try:
            request = _read(requests, None)
        except EOFError:
            return
        _write(replies, _one_job(*request))


def _one_job(
    data: bytes, name: str, content_type: str | None, limits: ExtractLimits
) -> tuple[Any, ...]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        code = 0
        try:
            _die_with_parent()
            _cap(limits)
            with os.fdopen(write_end, "wb") as out:
                _write(out, _extract(data, name, content_type, limits))
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as source:
        try:
            reply = _read(source, limits.timeout_s if limits.timeout_s > 0 else None)
        except TimeoutError:
            reply = ("failed", f"killed after {limits.timeout_s} s", "extraction_timeout")
        except EOFError:
            reply = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if reply is not None:
        return tuple(reply)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        return ("failed", "CPU time limit", "extraction_timeout")
    return ("failed", f"child ended with status {status}", "extraction_crashed")


def _extract(
    data: bytes, name: str, content_type: str | None, limits: ExtractLimits
) -> tuple[Any, ...]:
    try:
        extracted = extract_text(data, name, content_type, limits)
    except UnsupportedDocumentError as exc:
        return ("unsupported", str(exc))
    except InvalidDocumentError as exc:
        return ("invalid", str(exc), exc.code)
    except MemoryError:
        return ("failed", "MemoryError", "extraction_out_of_memory")
    except Exception as exc:  # a parser bug on this input: the caller logs it
        return ("failed", repr(exc)[:2000], "invalid_document")
    return ("ok", extracted.text, extracted.content_type)


def _cap(limits: ExtractLimits) -> None:
    if limits.timeout_s > 0:
        seconds = math.ceil(limits.timeout_s) + 1
        _lower(resource.RLIMIT_CPU, seconds, seconds + 1)
    if limits.memory_mb > 0:
        cap = limits.memory_mb * 1024 * 1024
        _lower(resource.RLIMIT_AS, cap, cap)


def _lower(which: int, soft: int, hard: int) -> None:
    """Lower a limit, never above what the process may already use (its hard limit)."""
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere: no-op)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)


def _write(out: IO[bytes], message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(payload)) + payload)
    out.flush()


def _read(source: IO[bytes], timeout_s: float | None) -> Any:
    """One message; ``EOFError`` at the end, ``TimeoutError`` past ``timeout_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    header = _read_exactly(source, _HEADER.size, deadline)
    (size,) = _HEADER.unpack(header)
    # NOTE: only our own server and children write here (the pipes are private).
    return pickle.loads(_read_exactly(source, size, deadline))  # noqa: S301


def _read_exactly(source: IO[bytes], size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    fd = source.fileno()
    while size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    serve()
