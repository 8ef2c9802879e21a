"""Extraction in a child process: real forks, real limits, real kills."""

from __future__ import annotations

import os
import signal

import pytest

from retrieval.errors import FAILURES, InvalidDocumentError, UnsupportedDocumentError
from retrieval.extract import ExtractLimits
from retrieval.extract_process import _SERVER, extract_isolated

LIMITS = ExtractLimits(timeout_s=10)


def test_text_comes_back_and_a_bad_type_is_refused() -> None:
    extracted = extract_isolated(b"<h1>Pumps</h1><p>Close the valve.</p>", "a.html", None, LIMITS)
    assert extracted.text == "# Pumps\n\nClose the valve."
    with pytest.raises(UnsupportedDocumentError):
        extract_isolated(b"data", "a.exe", "application/x-msdownload", LIMITS)


def test_a_child_that_runs_out_of_memory_fails_the_document_safely() -> None:
    """Guards the memory cap: the child, not the worker, runs out; the caller gets a
    code and a sentence, never the child's traceback."""
    huge = b"<p>" + b"word " * 400_000 + b"</p>"
    with pytest.raises(InvalidDocumentError) as failed:
        extract_isolated(huge, "huge.html", None, ExtractLimits(timeout_s=10, memory_mb=64))
    assert failed.value.code in ("extraction_out_of_memory", "extraction_crashed")
    assert str(failed.value) == f"'huge.html': {FAILURES[failed.value.code]}"
    # The next document is read as usual.
    assert extract_isolated(b"still fine", "b.txt", None, LIMITS).text == "still fine"


def test_a_lost_server_is_replaced() -> None:
    """Guards against one dead extraction server failing every document after it."""
    extract_isolated(b"warm up", "a.txt", None, LIMITS)
    process = _SERVER._process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert extract_isolated(b"after the loss", "b.txt", None, LIMITS).text == "after the loss"
