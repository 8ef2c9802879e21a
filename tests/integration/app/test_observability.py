"""What operators see: the ``/metrics`` names (docs/operations.md) and the JSON logs.

One real app for the module (SQLite, Qdrant local mode, the real embedder and
engine) driven over HTTP and WebSocket through Litestar's test client.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from app.core.settings import Settings
from app.server.factory import create_app
from kernel.migrations import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.datastructures import State

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]
OPS_TOKEN = "ops-" + "o" * 40
# Shaped like a real HS256 JWT, so the shape-based filter has something to catch.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZSIsImF1ZCI6InJhZ3NlcnZlIn0."
    "c2lnbmF0dXJlLW5vdC1yZWFsLWJ1dC1sb25n"
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("observability"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.generation.max_tokens = 4
    settings.safety.enabled = False
    settings.server.log_level = "info"
    settings.auth.ops_token = SecretStr(OPS_TOKEN)
    upgrade(settings.database_url)
    with TestClient(create_app(settings), timeout=120) as test_client:
        yield test_client


@pytest.fixture
def key(client: TestClient[Any]) -> str:
    services: State = client.app.state
    tenant = client.blocking_portal.call(services.tenants.ensure, f"t-{uuid.uuid4().hex[:10]}")
    return client.blocking_portal.call(services.api_keys.create, tenant.id).secret


def test_metrics_name_every_family_an_operator_needs(client: TestClient[Any], key: str) -> None:
    services: State = client.app.state
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/conversations/no-such-id", headers=auth).status_code == 404
    conversation = client.post("/v1/conversations", headers=auth, json={}).json()
    turn = client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=auth,
        json={"content": "Hello there", "options": {"max_tokens": 3}},
    )
    assert turn.status_code == 200, turn.text
    limits = services.settings.rate_limit
    saved = limits.key_burst, limits.key_rate
    # NOTE: a slow refill too: at the default 100/s a busy machine's gap between
    # the two requests (>10 ms) refilled the bucket and the test flaked.
    limits.key_burst, limits.key_rate = 1, 0.01
    try:
        # A fresh tenant's key with a burst of one: the second request is refused.
        tenant = client.blocking_portal.call(services.tenants.ensure, "metrics-limited")
        limited = client.blocking_portal.call(services.api_keys.create, tenant.id).secret
        limited_auth = {"Authorization": f"Bearer {limited}"}
        client.get("/v1/conversations", headers=limited_auth)
        assert client.get("/v1/conversations", headers=limited_auth).status_code == 429
    finally:
        limits.key_burst, limits.key_rate = saved

    body = client.get("/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"}).text
    expected = [
        # Request latency by route template and status, and request counts by status.
        'ragserve:http_request_duration_seconds_bucket{le="0.005",method="GET",'
        'route="/v1/conversations/{conversation_id}",status="404"}',
        'ragserve:http_requests_total{method="GET",route="/v1/conversations",status="429"}',
        'ragserve:http_requests_total{method="POST",route="/v1/conversations",status="201"}',
        # Per-stage latency of a turn, time to first token, inter-token and end to end.
        # ... each by the model version that answered.
        # (the exposition sorts labels by name)
        'ragserve:turn_stage_duration_seconds_count{model="',
        'stage="retrieve",version="',
        'stage="first_token",version="',
        "ragserve:time_to_first_token_seconds_count",
        "ragserve:inter_token_latency_seconds_count",
        "ragserve:e2e_request_latency_seconds_count",
        # Tokens in and out, queue length and running batch.
        "ragserve:prompt_tokens_total",
        "ragserve:generation_tokens_total",
        "ragserve:num_requests_waiting",
        "ragserve:num_requests_running",
        "ragserve:prefix_cache_hits_total",
        # Errors by code and rate-limit rejections by scope.
        'ragserve:errors_total{code="not_found"}',
        'ragserve:errors_total{code="rate_limited"}',
        'ragserve:rate_limit_rejections_total{scope="key"}',
        "ragserve:turns_total",
        # What answers cost and the tokens they used, by model, version and tenant.
        'ragserve:cost_total{model="',
        'ragserve:tokens_total{kind="completion",model="',
        # The router's view of every endpoint.
        "ragserve:router_endpoint_healthy",
        "ragserve:router_requests_total",
    ]
    missing = [name for name in expected if name not in body]
    assert not missing, missing


def test_logs_are_json_with_a_request_id_and_no_secrets(
    client: TestClient[Any], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    answers = [
        client.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"}),
        client.get("/v1/conversations", headers={"Authorization": f"Bearer {JWT}"}),
        client.get(f"/v1/conversations?api_key={key}&token={JWT}"),
        client.get("/v1/conversations/nope", headers={"Authorization": f"Bearer {key}"}),
    ]
    assert [a.status_code for a in answers] == [200, 401, 401, 404]
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": key}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"type": "ping", "id": "p1", "payload": {}})
        assert ws.receive_json()["type"] == "pong"
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": JWT}})
        with pytest.raises(Exception):  # noqa: B017, PT011 - closed 4401, whatever the client raises
            ws.receive_json()
    captured = capsys.readouterr().err
    deadline = time.monotonic() + 10
    while captured.count('"websocket_session"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the server side of a closed socket ends a moment later
        captured += capsys.readouterr().err
    assert key not in captured
    assert JWT not in captured
    assert JWT.split(".")[2] not in captured  # not even the signature alone
    assert "Bearer" not in captured
    lines = [json.loads(line) for line in captured.splitlines() if line.strip()]
    assert lines, "no log line was written"
    assert all(line.get("request_id") for line in lines), [
        line for line in lines if not line.get("request_id")
    ]
    access = [line for line in lines if line["event"] == "http_request"]
    assert [line["status"] for line in access] == [200, 401, 401, 404]
    # One id per request, the one the client got back in X-Request-ID.
    assert len({line["request_id"] for line in access}) == len(answers)
    for line, answer in zip(access, answers, strict=True):
        if answer.status_code != 401:  # see the report: middleware errors lack the header
            assert line["request_id"] == answer.headers["x-request-id"]
    sessions = [line for line in lines if line["event"] == "websocket_session"]
    assert len(sessions) == 2
    assert len({line["request_id"] for line in sessions}) == 2
    assert 4401 in {line["close_code"] for line in sessions}
