"""A batch input file's lines: parsed and checked as a whole, before any line runs.

The file is JSONL, one request per line: ``{"custom_id", "method", "url", "body"}``
as OpenAI's Batch API takes it. What a line's ``body`` holds is checked when the
line runs, by the same request models as the online routes, so a bad body fails
that line (in the error file) and not the batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.errors import BadRequestError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from app.batches.tables import BatchResultRow

__all__ = ["ENDPOINTS", "InputLine", "output_lines", "parse_input", "token_estimate"]

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
"""The routes a batch may run."""
MAX_CUSTOM_ID = 512


@dataclass(frozen=True, slots=True)
class InputLine:
    """One request of a batch.

    Attributes:
        line: Its position among the file's requests, from 0 (blank lines skipped).
        custom_id: The caller's id, unique in the file; results carry it back.
        url: The route it runs (one of ``ENDPOINTS``).
        body: The request, as the route takes it.
    """

    line: int
    custom_id: str
    url: str
    body: dict[str, Any]


def parse_input(content: bytes, *, max_lines: int) -> list[InputLine]:
    """The requests of a batch input file.

    Raises:
        BadRequestError: Not UTF-8, no request, more than ``max_lines``, a line that
            is not a JSON object of the four fields, an unknown ``method`` or
            ``url``, a duplicate ``custom_id``; the message names the file's line.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError("The file is not UTF-8 text.", param="file") from exc
    lines: list[InputLine] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(lines) >= max_lines:
            raise BadRequestError(f"The file holds more than {max_lines} requests.", param="file")
        entry = _line(raw, number)
        if entry.custom_id in seen:
            raise BadRequestError(
                f"Line {number}: custom_id {entry.custom_id!r} is used twice; each must be "
                "unique in the file.",
                param="file",
            )
        seen.add(entry.custom_id)
        lines.append(InputLine(len(lines), entry.custom_id, entry.url, entry.body))
    if not lines:
        raise BadRequestError("The file holds no request.", param="file")
    return lines


def _line(raw: str, number: int) -> InputLine:
    def bad(why: str) -> BadRequestError:
        return BadRequestError(f"Line {number}: {why}", param="file")

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad(f"not valid JSON ({exc.msg}).") from exc
    if not isinstance(data, dict):
        raise bad("each line must be a JSON object.")
    unknown = set(data) - {"custom_id", "method", "url", "body"}
    if unknown:
        raise bad(f"unknown field {sorted(unknown)[0]!r}.")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        raise bad(f"custom_id must be a string of 1 to {MAX_CUSTOM_ID} characters.")
    if data.get("method") != "POST":
        raise bad("method must be 'POST'.")
    url = data.get("url")
    if url not in ENDPOINTS:
        raise bad(f"url must be one of {', '.join(ENDPOINTS)}.")
    body = data.get("body")
    if not isinstance(body, dict):
        raise bad("body must be a JSON object.")
    return InputLine(0, custom_id, url, body)


def token_estimate(line: InputLine, default_max_tokens: int) -> int:
    """Tokens a line may cost, for the per-tenant quota: about 4 characters a prompt
    token, plus the answer's ``max_tokens`` (the default when not given)."""
    body = line.body
    if line.url == "/v1/embeddings":
        return len(json.dumps(body.get("input", ""))) // 4 + 1
    prompt = len(json.dumps(body.get("messages", ""))) // 4 + 1
    answer = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    return prompt + (answer if isinstance(answer, int) and answer > 0 else default_max_tokens)


def output_lines(rows: Iterable[BatchResultRow]) -> bytes:
    """Results as the lines of an output or error file, the way OpenAI writes them:
    ``{id, custom_id, response: {status_code, request_id, body} | null, error}``."""
    return "".join(
        json.dumps(
            {
                "id": row.request_id,
                "custom_id": row.custom_id,
                "response": None
                if row.body is None
                else {
                    "status_code": row.status_code,
                    "request_id": row.request_id,
                    "body": row.body,
                },
                "error": row.error,
            },
            separators=(",", ":"),
        )
        + "\n"
        for row in rows
    ).encode()
