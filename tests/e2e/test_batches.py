"""Batch jobs end to end: the official ``openai`` client against ``ragserve serve``
processes sharing PostgreSQL and Redis, and a worker killed mid-batch.

The kill is real (SIGKILL of the process running the batch): the batch's Redis
Streams entry stays pending, a second process claims it after the claim idle
time, answers only the lines that have no result yet, and the output holds every
line exactly once, with the lines answered before the kill as they were.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import psycopg
import pytest

from tests.e2e.server import Server, shared_nodes

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MODEL = "smollm2-135m-instruct"
ENV = {
    "RAGSERVE_SAFETY_ENABLED": "false",
    "RAGSERVE_BATCH_CLAIM_IDLE_S": "3",
    "RAGSERVE_BATCH_CONCURRENCY": "2",
}


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[Server]:
    with shared_nodes(tmp_path_factory, postgres_url, redis_url, ENV, count=1) as nodes:
        yield nodes[0]


def _client(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


def _chat_lines(count: int, max_tokens: int) -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"q-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": f"Say something about {n}."}],
                    "max_tokens": max_tokens,
                    "retrieval": {"enabled": False},
                },
            }
        )
        + "\n"
        for n in range(count)
    ).encode()


def _wait(client: openai.OpenAI, batch_id: str, until: set[str], timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until or time.monotonic() > deadline:
            return batch
        time.sleep(0.3)


def test_the_official_client_runs_a_batch_through_files_and_batches(node: Server) -> None:
    client = _client(node, node.create_key("batch-client", ("chat",)))
    lines = "".join(
        json.dumps(
            {
                "custom_id": f"e-{n}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "all-minilm-l6-v2", "input": f"line {n}"},
            }
        )
        + "\n"
        for n in range(4)
    )
    uploaded = client.files.create(file=("in.jsonl", lines.encode()), purpose="batch")
    assert uploaded.purpose == "batch"
    assert uploaded.bytes == len(lines.encode())
    created = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/embeddings",
        completion_window="24h",
        metadata={"run": "e2e"},
    )
    done = _wait(client, created.id, {"completed", "failed"})
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (4, 4)
    assert done.output_file_id is not None
    output = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [x["custom_id"] for x in output] == [f"e-{n}" for n in range(4)]
    assert len(output[0]["response"]["body"]["data"][0]["embedding"]) == 384
    listed = client.batches.list(limit=10)
    assert [b.id for b in listed.data] == [created.id]
    assert client.files.retrieve(uploaded.id).filename == "in.jsonl"
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("bad.jsonl", b'{"custom_id": 1}\n'), purpose="batch")
    assert "Line 1" in bad.value.message
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(created.id)


def _results(postgres_url: str, batch_id: str) -> dict[str, str]:
    """``custom_id`` -> ``request_id`` of the batch's stored results."""
    with psycopg.connect(postgres_url.replace("+asyncpg", "")) as connection:
        rows = connection.execute(
            "SELECT custom_id, request_id FROM batch_results WHERE batch_id = %s", (batch_id,)
        ).fetchall()
    return dict(rows)


def test_a_worker_killed_mid_batch_is_resumed_without_losing_or_repeating_a_line(
    node: Server, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> None:
    key = node.create_key("batch-kill", ("chat",))
    client = _client(node, key)
    total = 12
    uploaded = client.files.create(file=("in.jsonl", _chat_lines(total, 16)), purpose="batch")
    created = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 240
    while len(_results(postgres_url, created.id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node.process is not None
    node.process.kill()  # SIGKILL: no shutdown, the lease is simply never renewed
    node.process.wait()
    node.process = None
    before = _results(postgres_url, created.id)
    assert 2 <= len(before) < total, "the kill must land mid-batch"

    env = {k: v for k, v in node.env.items() if k.startswith("RAGSERVE_")}
    del env["RAGSERVE_DATA_DIR"]
    successor = Server(Path(tmp_path_factory.mktemp("successor")), env)
    successor.start()
    try:
        survivor = _client(successor, key)
        done = _wait(survivor, created.id, {"completed", "failed", "expired"})
        assert done.status == "completed", done
        assert done.request_counts is not None
        assert done.request_counts.total == done.request_counts.completed == total
        assert done.output_file_id is not None
        output = [
            json.loads(x) for x in survivor.files.content(done.output_file_id).text.splitlines()
        ]
        ids = [x["custom_id"] for x in output]
        assert sorted(ids) == sorted(f"q-{n}" for n in range(total))  # each line exactly once
        after = _results(postgres_url, created.id)
        assert len(after) == total
        # What the dead worker answered was kept, not answered again.
        assert {cid: after[cid] for cid in before} == before
        assert all(x["response"]["status_code"] == 200 for x in output)
    finally:
        successor.stop()
