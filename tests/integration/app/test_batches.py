"""Batch jobs through the API on one real app: the Files and Batches routes, lines
run through the real pipeline (embedder and engine), cancel, expiry, quotas, tenant
isolation, a batch resumed after the lines a dead worker had answered, and one
tenant's long batch giving way to another tenant's on a single worker.

The kill of a real worker process is in tests/e2e/test_batches.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import update

from app.auth.principal import Principal
from app.batches.execution import LineExecutor
from app.batches.lines import parse_input
from app.batches.runner import BatchRunner
from app.batches.service import BatchService
from app.batches.store import BatchStore, LineResult
from app.batches.tables import BatchRow
from app.core.settings import Settings
from app.ratelimit import InProcessTokenBuckets, RateLimiter
from app.ratelimit.settings import RateLimitSettings
from app.server.factory import create_app
from kernel.db import create_engine, session_factory
from kernel.migrations import upgrade
from kernel.orm import utcnow
from kernel.queue.memory import InProcessQueue

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.datastructures import State

    from app.batches.settings import BatchSettings

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]
MODEL = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
MAX_FILE_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("batches"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.generation.max_tokens = 4
    settings.safety.enabled = False
    settings.rate_limit.enabled = False
    settings.batch.concurrency = 4
    settings.batch.max_file_bytes = MAX_FILE_BYTES
    settings.batch.max_queued_tokens = 20_000
    upgrade(settings.database_url)
    with TestClient(create_app(settings), timeout=120) as test_client:
        yield test_client


def _key(
    client: TestClient[Any], tenant_name: str | None = None, role: str = "user"
) -> dict[str, str]:
    state: State = client.app.state
    name = tenant_name or f"t-{uuid.uuid4().hex[:10]}"
    tenant = client.blocking_portal.call(state.tenants.ensure, name)
    created = client.blocking_portal.call(
        lambda: state.api_keys.create(tenant.id, scopes=("chat",), role=role)
    )
    return {"Authorization": f"Bearer {created.secret}"}


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _embed_line(n: int, text: str | None = None, model: str = EMBEDDER) -> dict[str, Any]:
    return {
        "custom_id": f"e-{n}",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": model, "input": text or f"sentence number {n}"},
    }


def _chat_line(n: int, max_tokens: int = 4) -> dict[str, Any]:
    return {
        "custom_id": f"c-{n}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Count to {n}."}],
            "max_tokens": max_tokens,
            "retrieval": {"enabled": False},
        },
    }


def _upload(
    client: TestClient[Any], auth: dict[str, str], content: bytes, purpose: str = "batch"
) -> Any:
    return client.post(
        "/v1/files",
        files={"file": ("input.jsonl", content, "application/jsonl")},
        data={"purpose": purpose},
        headers=auth,
    )


def _create(
    client: TestClient[Any], auth: dict[str, str], lines: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    uploaded = _upload(client, auth, _jsonl(lines))
    assert uploaded.status_code == 200, uploaded.text
    body = {
        "input_file_id": uploaded.json()["id"],
        "endpoint": lines[0]["url"],
        "completion_window": "24h",
        **extra,
    }
    created = client.post("/v1/batches", json=body, headers=auth)
    assert created.status_code == 200, created.text
    return dict(created.json())


def _wait(
    client: TestClient[Any],
    auth: dict[str, str],
    batch_id: str,
    until: set[str],
    timeout: float = 120,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/v1/batches/{batch_id}", headers=auth).json()
        if batch["status"] in until or time.monotonic() > deadline:
            return dict(batch)
        time.sleep(0.2)


def _offline(
    client: TestClient[Any], settings: BatchSettings | None = None
) -> tuple[BatchService, BatchRunner]:
    """A service and a runner on the app's store over a queue nobody consumes: the
    test decides when (and whether) a batch runs."""
    state: State = client.app.state
    service: BatchService = state.batches
    settings = settings or state.settings.batch
    idle: InProcessQueue[str] = InProcessQueue(service.queue.kind)
    executor = LineExecutor(state.openai, None)
    return (
        BatchService(service.store, idle, settings, default_max_tokens=4),
        BatchRunner(service.store, idle, executor, settings),
    )


def _principal(client: TestClient[Any], auth: dict[str, str]) -> Principal:
    state: State = client.app.state
    principal: Principal = client.blocking_portal.call(
        state.authenticator.authenticate, auth["Authorization"][7:]
    )
    return principal


def _results(client: TestClient[Any], auth: dict[str, str], file_id: str | None) -> list[Any]:
    if file_id is None:
        return []
    response = client.get(f"/v1/files/{file_id}/content", headers=auth)
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


def test_an_embeddings_batch_answers_every_line_once_as_the_online_route_does(
    client: TestClient[Any],
) -> None:
    auth = _key(client)
    lines = [_embed_line(n) for n in range(5)] + [_embed_line(9, model="no-such-model")]
    created = _create(client, auth, lines, metadata={"job": "nightly"})
    assert created["object"] == "batch"
    assert created["status"] == "validating"
    assert created["request_counts"] == {"total": 6, "completed": 0, "failed": 0}
    done = _wait(client, auth, created["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
    assert done["metadata"] == {"job": "nightly"}
    assert done["in_progress_at"]
    assert done["completed_at"]
    assert done["finalizing_at"]
    output = _results(client, auth, done["output_file_id"])
    assert [line["custom_id"] for line in output] == [f"e-{n}" for n in range(5)]
    online = client.post(
        "/v1/embeddings", json={"model": EMBEDDER, "input": "sentence number 3"}, headers=auth
    ).json()
    assert output[3]["response"]["status_code"] == 200
    assert output[3]["response"]["body"]["data"] == online["data"]
    assert output[3]["error"] is None
    errors = _results(client, auth, done["error_file_id"])
    assert [line["custom_id"] for line in errors] == ["e-9"]
    assert errors[0]["response"]["status_code"] == 404
    assert errors[0]["response"]["body"]["error"]["code"] == "model_not_found"
    assert done["usage"]["input_tokens"] > 0
    files = client.get("/v1/files", headers=auth).json()
    assert {f["purpose"] for f in files["data"]} == {"batch", "batch_output"}


def test_a_chat_batch_runs_real_turns_and_stores_them(client: TestClient[Any]) -> None:
    auth = _key(client)
    created = _create(client, auth, [_chat_line(n) for n in range(3)])
    done = _wait(client, auth, created["id"], {"completed", "failed"})
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}, done
    output = _results(client, auth, done["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == ["c-0", "c-1", "c-2"]
    body = output[0]["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["usage"]["completion_tokens"] <= 4
    # Each line is an ordinary stored turn of the batch creator's.
    conversation = client.get(f"/v1/conversations/{body['conversation_id']}", headers=auth)
    assert conversation.status_code == 200
    assert done["usage"]["output_tokens"] == sum(
        line["response"]["body"]["usage"]["completion_tokens"] for line in output
    )


def test_a_bad_body_fails_its_line_not_the_batch(client: TestClient[Any]) -> None:
    auth = _key(client)
    bad = _chat_line(1)
    bad["body"]["max_tokens"] = "ten"
    streamed = _chat_line(2)
    streamed["body"]["stream"] = True
    done = _wait(
        client, auth, _create(client, auth, [_chat_line(0), bad, streamed])["id"], {"completed"}
    )
    assert done["request_counts"] == {"total": 3, "completed": 1, "failed": 2}
    errors = {line["custom_id"]: line for line in _results(client, auth, done["error_file_id"])}
    assert errors["c-1"]["response"]["status_code"] == 400
    assert errors["c-1"]["response"]["body"]["error"]["param"] == "max_tokens"
    assert errors["c-2"]["response"]["body"]["error"]["param"] == "stream"


@pytest.mark.parametrize(
    ("content", "purpose", "status", "fragment"),
    [
        (b'{"custom_id": "a", "method": "POST"', "batch", 400, "Line 1: not valid JSON"),
        (_jsonl([_embed_line(1), _embed_line(1)]), "batch", 400, "used twice"),
        (_jsonl([{**_embed_line(1), "url": "/v1/completions"}]), "batch", 400, "url must be"),
        (_jsonl([{**_embed_line(1), "method": "GET"}]), "batch", 400, "method must be"),
        (b"\n\n", "batch", 400, "no request"),
        (b"\xff\xfe", "batch", 400, "not UTF-8"),
        (_jsonl([_embed_line(1)]), "fine-tune", 400, "purpose must be"),
        (b"x" * (MAX_FILE_BYTES + 1), "batch", 413, "the limit is 65536"),
        # Refused from its Content-Length, before the body is read.
        (b"x" * (MAX_FILE_BYTES + 100_000), "batch", 413, "may be at most 65536"),
    ],
)
def test_a_bad_file_is_refused_with_the_line_at_fault(
    client: TestClient[Any], content: bytes, purpose: str, status: int, fragment: str
) -> None:
    auth = _key(client)
    before = client.get("/v1/files", headers=auth).json()["data"]
    response = _upload(client, auth, content, purpose)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]
    assert client.get("/v1/files", headers=auth).json()["data"] == before


def test_a_bad_batch_is_refused_and_nothing_is_queued(client: TestClient[Any]) -> None:
    auth = _key(client)
    file_id = _upload(client, auth, _jsonl([_embed_line(1)])).json()["id"]
    cases = [
        ({"endpoint": "/v1/completions"}, 400, "endpoint"),
        ({"endpoint": "/v1/chat/completions"}, 400, "input_file_id"),
        ({"completion_window": "1 day"}, 400, "completion_window"),
        ({"completion_window": "200h"}, 400, "completion_window"),
        ({"input_file_id": "file-nope"}, 404, "file_id"),
        ({"metadata": {"k": "v" * 600}}, 400, "metadata.k"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, 400, "metadata"),
    ]
    for change, status, param in cases:
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/embeddings",
            "completion_window": "24h",
            **change,
        }
        response = client.post("/v1/batches", json=body, headers=auth)
        assert response.status_code == status, (change, response.text)
        assert response.json()["error"]["param"] == param
    assert client.get("/v1/batches", headers=auth).json()["data"] == []


def test_the_tenant_quota_refuses_a_batch_with_429(client: TestClient[Any]) -> None:
    auth = _key(client)
    big = [_chat_line(n, max_tokens=900) for n in range(25)]  # ~22,500 tokens > 20,000
    uploaded = _upload(client, auth, _jsonl(big)).json()
    response = client.post(
        "/v1/batches",
        json={
            "input_file_id": uploaded["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=auth,
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "batch_quota_exceeded"
    assert "quota" in response.json()["error"]["message"]
    assert client.get("/v1/batches", headers=auth).json()["data"] == []


def test_another_tenants_files_and_batches_are_not_found(client: TestClient[Any]) -> None:
    owner, stranger = _key(client), _key(client)
    created = _create(client, owner, [_embed_line(1)])
    done = _wait(client, owner, created["id"], {"completed"})
    for path in (
        f"/v1/batches/{created['id']}",
        f"/v1/files/{created['input_file_id']}",
        f"/v1/files/{done['output_file_id']}/content",
    ):
        assert client.get(path, headers=stranger).status_code == 404, path
    assert client.post(f"/v1/batches/{created['id']}/cancel", headers=stranger).status_code == 404
    assert client.delete(f"/v1/files/{done['output_file_id']}", headers=stranger).status_code == 404
    assert client.get("/v1/batches", headers=stranger).json()["data"] == []
    assert client.get(f"/v1/files/{done['output_file_id']}", headers=owner).status_code == 200
    # A batch of another tenant's file: that file is not found either.
    steal = client.post(
        "/v1/batches",
        json={
            "input_file_id": created["input_file_id"],
            "endpoint": "/v1/embeddings",
            "completion_window": "24h",
        },
        headers=stranger,
    )
    assert steal.status_code == 404


def test_inside_a_tenant_users_reach_their_own_batches_and_admins_all(
    client: TestClient[Any],
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    alice, bob, admin = _key(client, tenant), _key(client, tenant), _key(client, tenant, "admin")
    created = _create(client, alice, [_embed_line(1)])
    done = _wait(client, alice, created["id"], {"completed"})
    for path in (f"/v1/batches/{created['id']}", f"/v1/files/{done['output_file_id']}/content"):
        assert client.get(path, headers=bob).status_code == 404, path
        assert client.get(path, headers=admin).status_code == 200, path
    assert client.get("/v1/batches", headers=bob).json()["data"] == []
    assert [b["id"] for b in client.get("/v1/batches", headers=admin).json()["data"]] == [
        created["id"]
    ]


def test_batches_list_newest_first_a_page_at_a_time(client: TestClient[Any]) -> None:
    auth = _key(client)
    ids = [_create(client, auth, [_embed_line(n)])["id"] for n in range(3)]
    first = client.get("/v1/batches", params={"limit": 2}, headers=auth).json()
    assert [b["id"] for b in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    assert first["last_id"] == ids[1]
    rest = client.get(
        "/v1/batches", params={"limit": 2, "after": first["last_id"]}, headers=auth
    ).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    assert client.get("/v1/batches", params={"limit": 0}, headers=auth).status_code == 400


def test_a_cancelled_batch_stops_and_keeps_what_was_answered(client: TestClient[Any]) -> None:
    auth = _key(client)
    created = _create(client, auth, [_chat_line(n, max_tokens=16) for n in range(40)])
    _wait(client, auth, created["id"], {"in_progress"})
    cancelling = client.post(f"/v1/batches/{created['id']}/cancel", headers=auth)
    assert cancelling.status_code == 200
    assert cancelling.json()["status"] in ("cancelling", "cancelled")
    # The input file is still read: it cannot be deleted yet (or it is done already).
    deleting = client.delete(f"/v1/files/{created['input_file_id']}", headers=auth)
    done = _wait(client, auth, created["id"], {"cancelled"})
    assert done["status"] == "cancelled", done
    counts = done["request_counts"]
    assert counts["completed"] + counts["failed"] < counts["total"] == 40
    assert len(_results(client, auth, done["output_file_id"])) == counts["completed"]
    again = client.post(f"/v1/batches/{created['id']}/cancel", headers=auth)
    assert again.json()["status"] == "cancelled"
    if deleting.status_code == 409:
        assert client.delete(f"/v1/files/{created['input_file_id']}", headers=auth).json() == {
            "id": created["input_file_id"],
            "object": "file",
            "deleted": True,
        }
    finished = _create(client, auth, [_embed_line(1)])
    _wait(client, auth, finished["id"], {"completed"})
    late = client.post(f"/v1/batches/{finished['id']}/cancel", headers=auth)
    assert late.status_code == 409


def test_an_expired_batch_writes_its_unanswered_lines_as_expired(client: TestClient[Any]) -> None:
    auth = _key(client)
    created = _create(client, auth, [_chat_line(n, max_tokens=16) for n in range(40)])
    _wait(client, auth, created["id"], {"in_progress"})
    state: State = client.app.state

    async def expire_now() -> None:
        async with state.sessions() as session, session.begin():
            await session.execute(
                update(BatchRow).where(BatchRow.id == created["id"]).values(expires_at=utcnow())
            )

    client.blocking_portal.call(expire_now)
    done = _wait(client, auth, created["id"], {"expired"})
    assert done["status"] == "expired", done
    counts = done["request_counts"]
    assert counts["completed"] + counts["failed"] == counts["total"] == 40
    expired = [
        line
        for line in _results(client, auth, done["error_file_id"])
        if line["error"] and line["error"]["code"] == "batch_expired"
    ]
    assert expired
    assert all(line["response"] is None for line in expired)
    assert len(expired) + counts["completed"] == 40


def test_a_batch_no_worker_started_is_cancelled_at_once(client: TestClient[Any]) -> None:
    """Every worker busy elsewhere: the cancel does not wait for one to take it."""
    state: State = client.app.state
    service: BatchService = state.batches
    offline, runner = _offline(client)
    auth = _key(client)
    principal = _principal(client, auth)
    file_id = _upload(client, auth, _jsonl([_embed_line(n) for n in range(3)])).json()["id"]
    batch = client.blocking_portal.call(
        lambda: offline.create(
            principal, input_file_id=file_id, endpoint="/v1/embeddings", window="24h", metadata=None
        )
    )
    cancelled = client.post(f"/v1/batches/{batch.id}/cancel", headers=auth).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    assert cancelled["output_file_id"] is None
    assert cancelled["request_counts"] == {"total": 3, "completed": 0, "failed": 0}
    # The input file is free again, and the quota no longer counts the batch.
    assert client.blocking_portal.call(service.store.queued, principal.tenant_id) == (0, 0)
    # A worker that takes its queue entry later finds it ended and runs nothing.
    assert client.blocking_portal.call(runner.run, batch.id)
    assert client.get(f"/v1/batches/{batch.id}", headers=auth).json() == cancelled
    assert client.blocking_portal.call(service.store.answered, batch.id) == set()


def test_one_worker_takes_turns_between_two_tenants_batches(
    client: TestClient[Any], tmp_path: Path
) -> None:
    """One worker, a long batch of one tenant running: another tenant's small batch
    runs and completes while the long one waits, and the long one then resumes and
    answers every line exactly once."""
    state: State = client.app.state
    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}"
    upgrade(url)
    engine = create_engine(url)
    store = BatchStore(session_factory(engine))
    queue: InProcessQueue[str] = InProcessQueue(state.batches.queue.kind)
    settings = state.settings.batch.model_copy(
        update={
            "workers": 1,
            "quantum_s": 0.5,
            "max_file_bytes": 1 << 20,
            "max_queued_tokens": 10**6,
        }
    )
    service = BatchService(store, queue, settings, default_max_tokens=4)
    runner = BatchRunner(store, queue, LineExecutor(state.openai, None), settings)
    busy = Principal(tenant_id="busy", subject="key:busy", role="admin", scopes=("chat",))
    small = Principal(tenant_id="small", subject="key:small", role="admin", scopes=("chat",))

    def create(principal: Principal, lines: int) -> BatchRow:
        async def go() -> BatchRow:
            content = _jsonl(
                [_embed_line(n, f"line {n} of {principal.tenant_id}") for n in range(lines)]
            )
            uploaded = await service.upload(
                principal, filename="in.jsonl", purpose="batch", content=content
            )
            return await service.create(
                principal,
                input_file_id=uploaded.id,
                endpoint="/v1/embeddings",
                window="24h",
                metadata=None,
            )

        return client.blocking_portal.call(go)

    def status(batch_id: str) -> BatchRow:
        return client.blocking_portal.call(store.batch, None, batch_id)

    def wait(batch_id: str, until: set[str]) -> BatchRow:
        deadline = time.monotonic() + 120
        while (row := status(batch_id)).status not in until and time.monotonic() < deadline:
            time.sleep(0.05)
        return row

    client.blocking_portal.call(runner.start)
    try:
        long = create(busy, 600)
        assert wait(long.id, {"in_progress"}).status == "in_progress"
        short = create(small, 3)
        done = wait(short.id, {"completed"})
        assert done.status == "completed"
        meanwhile = status(long.id)
        assert meanwhile.status == "in_progress", "the small batch waited for the long one"
        assert meanwhile.completed < 600
        finished = wait(long.id, {"completed"})
        assert finished.status == "completed"
        assert (finished.completed, finished.failed) == (600, 0)
        output = client.blocking_portal.call(
            lambda: store.file("busy", str(finished.output_file_id))
        )
        assert output.lines == 600
        answered = client.blocking_portal.call(store.answered, long.id)
        assert answered == {f"e-{n}" for n in range(600)}
    finally:
        client.blocking_portal.call(runner.stop)
        client.blocking_portal.call(engine.dispose)


def test_a_batch_resumes_after_the_lines_a_dead_worker_answered(client: TestClient[Any]) -> None:
    """As a worker that died mid-batch leaves it: some result rows, the batch in
    progress. The next run answers only the rest, and the rows already stored stay."""
    state: State = client.app.state
    service: BatchService = state.batches
    offline, runner = _offline(client)
    auth = _key(client)
    principal = _principal(client, auth)
    file_id = _upload(client, auth, _jsonl([_embed_line(n) for n in range(6)])).json()["id"]
    batch = client.blocking_portal.call(
        lambda: offline.create(
            principal, input_file_id=file_id, endpoint="/v1/embeddings", window="24h", metadata=None
        )
    )
    earlier = [
        LineResult(n, f"e-{n}", f"batch_req_earlier{n}", 200, {"object": "list", "n": n})
        for n in (0, 2)
    ]
    for result in earlier:
        assert client.blocking_portal.call(service.store.record, batch.id, result)
    # A duplicate delivery of an answered line is stored and counted once.
    assert not client.blocking_portal.call(service.store.record, batch.id, earlier[0])
    client.blocking_portal.call(runner.run, batch.id)
    done = client.get(f"/v1/batches/{batch.id}", headers=auth).json()
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    output = _results(client, auth, done["output_file_id"])
    assert [line["custom_id"] for line in output] == [f"e-{n}" for n in range(6)]
    assert output[0]["id"] == "batch_req_earlier0"
    assert output[2]["response"]["body"] == {"object": "list", "n": 2}
    assert output[1]["response"]["body"]["object"] == "list"
    # A second delivery of the finished batch changes nothing.
    client.blocking_portal.call(runner.run, batch.id)
    assert client.get(f"/v1/batches/{batch.id}", headers=auth).json() == done


def test_output_files_are_read_from_the_results_a_page_at_a_time(
    client: TestClient[Any],
) -> None:
    """1,100 results (every seventh failed), more than two pages: the output and
    error files hold each line once, in input order, with the size the file record
    says; deleting the output file deletes its results and leaves the errors."""
    state: State = client.app.state
    service: BatchService = state.batches
    settings = state.settings.batch.model_copy(
        update={"max_file_bytes": 1 << 20, "max_queued_tokens": 10**6}
    )
    offline, runner = _offline(client, settings)
    auth = _key(client)
    principal = _principal(client, auth)
    count = 1100

    async def answered_elsewhere() -> str:
        content = _jsonl([_embed_line(n, "x") for n in range(count)])
        upload = await offline.upload(
            principal, filename="in.jsonl", purpose="batch", content=content
        )
        batch = await offline.create(
            principal,
            input_file_id=upload.id,
            endpoint="/v1/embeddings",
            window="24h",
            metadata=None,
        )
        for n in range(count):
            failed = n % 7 == 0
            result = LineResult(
                n,
                f"e-{n}",
                f"batch_req_{n}",
                400 if failed else 200,
                {"error": {"message": f"bad {n}"}} if failed else {"object": "list", "n": n},
            )
            await service.store.record(batch.id, result)
        await runner.run(batch.id)
        return batch.id

    batch_id = client.blocking_portal.call(answered_elsewhere)
    done = client.get(f"/v1/batches/{batch_id}", headers=auth).json()
    assert done["status"] == "completed"
    failed = [n for n in range(count) if n % 7 == 0]
    assert done["request_counts"] == {
        "total": count,
        "completed": count - len(failed),
        "failed": len(failed),
    }
    for file_id, expected in (
        (done["output_file_id"], [n for n in range(count) if n % 7]),
        (done["error_file_id"], failed),
    ):
        record = client.get(f"/v1/files/{file_id}", headers=auth).json()
        response = client.get(f"/v1/files/{file_id}/content", headers=auth)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/jsonl")
        assert len(response.content) == record["bytes"]
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [line["custom_id"] for line in lines] == [f"e-{n}" for n in expected]
        assert lines[-1]["response"]["status_code"] in (200, 400)
    deleted = client.delete(f"/v1/files/{done['output_file_id']}", headers=auth)
    assert deleted.json()["deleted"] is True
    gone = client.get(f"/v1/files/{done['output_file_id']}/content", headers=auth)
    assert gone.status_code == 404
    answered = client.blocking_portal.call(service.store.answered, batch_id)
    assert answered == {f"e-{n}" for n in failed}
    errors = client.get(f"/v1/files/{done['error_file_id']}/content", headers=auth)
    assert len(errors.text.splitlines()) == len(failed)


def test_lines_wait_for_the_creators_rate_limit_instead_of_failing(
    client: TestClient[Any],
) -> None:
    """A key allowed 2 requests at once and 4 a second: six embeddings lines all
    succeed, the later ones after waiting for the bucket; a stopped batch's line
    does not run."""
    state: State = client.app.state
    limits = RateLimitSettings(enabled=True, key_burst=2, key_rate=4.0)
    limiter = RateLimiter(InProcessTokenBuckets(), limits)
    executor = LineExecutor(state.openai, limiter)
    auth = _key(client)
    principal = _principal(client, auth)
    lines = parse_input(_jsonl([_embed_line(n) for n in range(6)]), max_lines=10)

    async def run_all() -> list[Any]:
        return [await executor.run(principal, line) for line in lines]

    before = _rejections()
    results = client.blocking_portal.call(run_all)
    assert [r[0].status_code for r in results] == [200] * 6
    assert _rejections() > before  # some lines waited for the bucket

    async def stopped_while_waiting() -> Any:
        stop = asyncio.Event()
        stop.set()
        return await executor.run(principal, lines[0], stop)

    assert client.blocking_portal.call(stopped_while_waiting) is None


def _rejections() -> float:
    value = REGISTRY.get_sample_value("ragserve:rate_limit_rejections_total", {"scope": "key"})
    return value or 0.0
