"""Rate limits and size bounds as a client of the real app sees them (in-process limiter).

One app for the module (SQLite, Qdrant local mode, the real embedder and engine),
opened by its own lifespan; each test gets a fresh tenant and key, so buckets never
carry over, and sets the limits it needs on the live settings the limiter reads.
"""

from __future__ import annotations

import json
import threading
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

    import httpx
    from litestar.datastructures import State

    from app.ratelimit.settings import RateLimitSettings

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]
OPS_TOKEN = "ops-" + "o" * 40
LIMIT_HEADERS = {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("rate-limits"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.generation.max_tokens = 8
    settings.safety.enabled = False
    settings.auth.ops_token = SecretStr(OPS_TOKEN)
    upgrade(settings.database_url)
    with TestClient(create_app(settings), timeout=120) as test_client:
        yield test_client


@pytest.fixture
def services(client: TestClient[Any]) -> State:
    found: State = client.app.state
    return found


@pytest.fixture
def limits(services: State) -> Iterator[RateLimitSettings]:
    """The live rate-limit settings; restored after the test."""
    live = services.settings.rate_limit
    saved = live.model_dump()
    yield live
    for name, value in saved.items():
        setattr(live, name, value)


def new_key(client: TestClient[Any], services: State) -> dict[str, str]:
    """Authorization headers of a key of a tenant made for this test alone."""
    tenant = client.blocking_portal.call(services.tenants.ensure, f"t-{uuid.uuid4().hex[:10]}")
    created = client.blocking_portal.call(
        lambda: services.api_keys.create(tenant.id, scopes=("chat", "documents:write"))
    )
    return {"Authorization": f"Bearer {created.secret}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code


def test_successful_responses_carry_the_rate_limit_headers(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    limits.key_burst, limits.key_rate = 50, 5
    auth = new_key(client, services)
    first = client.get("/v1/conversations", headers=auth)
    second = client.get("/v1/conversations", headers=auth)
    assert first.status_code == second.status_code == 200
    assert set(first.headers) >= LIMIT_HEADERS
    assert first.headers["ratelimit-limit"] == "50"
    assert first.headers["ratelimit-remaining"] == "49"
    assert second.headers["ratelimit-remaining"] == "48"
    assert first.headers["ratelimit-policy"] == "50;w=10"
    assert int(second.headers["ratelimit-reset"]) >= 1


def test_over_the_limit_is_429_with_retry_after_and_changes_nothing(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    limits.key_burst, limits.key_rate = 3, 0.2
    auth = new_key(client, services)
    answers = [client.post("/v1/conversations", headers=auth, json={}) for _ in range(5)]
    assert [r.status_code for r in answers] == [201, 201, 201, 429, 429]
    refused = answers[-1]
    assert_error(refused, 429, "rate_limited")
    assert "API key" in refused.json()["error"]["message"]
    # One request at 0.2/s is 5 s away: Retry-After is a whole number of seconds, ≥ 1.
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    assert refused.headers["ratelimit-remaining"] == "0"
    assert set(refused.headers) >= LIMIT_HEADERS
    # Errors raised in middlewares still carry the request id (regression: they did not).
    assert len(refused.headers["x-request-id"]) == 32
    unauthenticated = client.get("/v1/conversations", headers={"Authorization": "Bearer nope"})
    assert unauthenticated.status_code == 401
    assert len(unauthenticated.headers["x-request-id"]) == 32
    # Nothing was created by the refused requests.
    tenant_id = _tenant_of(client, services, auth)
    page = client.blocking_portal.call(services.conversations.list, tenant_id)
    assert len(page.items) == 3
    # Probes, metrics and the schema are never limited.
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
        answer = client.get(path, headers=ops if path == "/metrics" else auth)
        assert answer.status_code == 200, path
        assert "ratelimit-limit" not in answer.headers


def test_the_tenant_bucket_caps_all_of_its_keys(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    limits.tenant_burst, limits.tenant_rate = 4, 0.01
    tenant = client.blocking_portal.call(services.tenants.ensure, f"t-{uuid.uuid4().hex[:10]}")
    keys = [client.blocking_portal.call(services.api_keys.create, tenant.id) for _ in range(2)]
    statuses = [
        client.get("/v1/conversations", headers={"Authorization": f"Bearer {k.secret}"})
        for k in keys * 3
    ]
    assert [r.status_code for r in statuses] == [200] * 4 + [429] * 2
    assert "tenant" in statuses[-1].json()["error"]["message"]


def test_generated_tokens_use_up_the_token_budget(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    limits.tokens_burst, limits.tokens_rate = 4, 0.05
    auth = new_key(client, services)
    conversation = client.post("/v1/conversations", headers=auth, json={}).json()
    turn = client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=auth,
        json={"content": "Count from one to twenty.", "options": {"max_tokens": 8}},
    )
    assert turn.status_code == 200, turn.text
    assert turn.json()["message"]["usage"]["completion_tokens"] > 4
    refused = client.get("/v1/conversations", headers=auth)
    assert_error(refused, 429, "rate_limited")
    assert "token budget" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 20  # ≥ 1 token of debt at 0.05/s


def test_a_keys_chat_turns_at_once_are_capped(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    limits.max_turns_per_key = 1
    auth, other = new_key(client, services), new_key(client, services)
    long_turn: dict[str, httpx.Response] = {}

    long_conversation = client.post("/v1/conversations", headers=auth, json={}).json()

    def run_long_turn() -> None:
        long_turn["answer"] = client.post(
            f"/v1/conversations/{long_conversation['id']}/messages",
            headers={**auth, "Accept": "text/event-stream"},
            json={"content": "Tell me a long story.", "options": {"max_tokens": 200}},
        )

    conversation = client.post("/v1/conversations", headers=auth, json={}).json()
    url = f"/v1/conversations/{conversation['id']}/messages"
    worker = threading.Thread(target=run_long_turn)
    worker.start()
    try:
        # NOTE: probe only once the long turn holds the key's slot; probing earlier
        # races it (a probe holding the slot would make the long turn the refused one).
        subject = _subject(client, services, auth)
        assert services.rate_limiter is not None
        deadline = time.monotonic() + 60
        while services.rate_limiter.running_turns(subject) == 0:
            assert time.monotonic() < deadline, "the long turn never started"
            time.sleep(0.02)
        refused = client.post(url, headers=auth, json={"content": "Hi"})
        assert_error(refused, 429, "too_many_turns")
        assert int(refused.headers["retry-after"]) >= 1
        # Another key's turns are not held back.
        other_conversation = client.post("/v1/conversations", headers=other, json={}).json()
        allowed = client.post(
            f"/v1/conversations/{other_conversation['id']}/messages",
            headers=other,
            json={"content": "Hi", "options": {"max_tokens": 2}},
        )
        assert allowed.status_code == 200, allowed.text
    finally:
        worker.join(timeout=300)
    assert long_turn["answer"].status_code == 200
    assert services.rate_limiter is not None
    assert services.rate_limiter.running_turns(_subject(client, services, auth)) == 0
    again = client.post(url, headers=auth, json={"content": "Hi", "options": {"max_tokens": 2}})
    assert again.status_code == 200, again.text


def _tenant_of(client: TestClient[Any], services: State, auth: dict[str, str]) -> str:
    principal = _principal(client, services, auth)
    return str(principal.tenant_id)


def _subject(client: TestClient[Any], services: State, auth: dict[str, str]) -> str:
    return str(_principal(client, services, auth).subject)


def _principal(client: TestClient[Any], services: State, auth: dict[str, str]) -> Any:
    token = auth["Authorization"].removeprefix("Bearer ")
    return client.blocking_portal.call(services.authenticator.authenticate, token)


# --- size bounds -------------------------------------------------------------------


def test_page_size_is_bounded(client: TestClient[Any], services: State) -> None:
    auth = new_key(client, services)
    assert_error(client.get("/v1/conversations?limit=101", headers=auth), 400)
    assert_error(client.get("/v1/conversations?limit=0", headers=auth), 400)
    assert client.get("/v1/conversations?limit=100", headers=auth).status_code == 200


def test_documents_per_upload_are_bounded(client: TestClient[Any], services: State) -> None:
    auth = new_key(client, services)
    limit = services.settings.retrieval.max_upload_files
    files = [("file", (f"d{i}.txt", b"hello", "text/plain")) for i in range(limit + 1)]
    refused = client.post("/v1/documents", headers=auth, files=files)
    assert_error(refused, 422)
    assert str(limit) in refused.json()["error"]["message"]
    listed = client.get("/v1/documents", headers=auth).json()
    assert listed["data"] == []


def test_message_length_max_tokens_and_body_size_are_bounded(
    client: TestClient[Any], services: State
) -> None:
    auth = new_key(client, services)
    conversation = client.post("/v1/conversations", headers=auth, json={}).json()
    url = f"/v1/conversations/{conversation['id']}/messages"
    max_chars = services.settings.server.max_message_chars
    assert_error(client.post(url, headers=auth, json={"content": "x" * (max_chars + 1)}), 422)
    over = services.settings.generation.max_tokens_limit + 1
    assert_error(
        client.post(url, headers=auth, json={"content": "hi", "options": {"max_tokens": over}}),
        422,
    )
    huge = json.dumps({"content": "x" * (services.settings.server.max_body_bytes + 10)})
    assert_error(
        client.post(url, headers={**auth, "content-type": "application/json"}, content=huge), 413
    )
    stored = client.get(f"/v1/conversations/{conversation['id']}", headers=auth).json()
    assert stored["messages"] == []


def test_turns_at_once_on_one_socket_are_bounded(client: TestClient[Any], services: State) -> None:
    auth = new_key(client, services)
    token = auth["Authorization"].removeprefix("Bearer ")
    limit = services.settings.server.ws_max_turns
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": token}})
        assert ws.receive_json()["type"] == "connection_ack"
        for i in range(limit + 1):
            ws.send_json(
                {
                    "type": "chat",
                    "id": f"t{i}",
                    "payload": {"content": "Tell me a story.", "options": {"max_tokens": 64}},
                }
            )
        refused = None
        while refused is None:
            message = ws.receive_json()
            if message["type"] == "error" and message["id"] == f"t{limit}":
                refused = message
        assert refused["payload"]["code"] == "too_many_turns"
        for i in range(limit):
            ws.send_json({"type": "cancel", "id": f"t{i}"})


def test_websocket_turns_are_rate_limited_per_turn_and_the_socket_goes_on(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    """A WebSocket chat over the key's budget gets an ``error`` frame, not a dead socket."""
    limits.key_burst, limits.key_rate = 1, 0.05
    auth = new_key(client, services)
    token = auth["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": token}})
        assert ws.receive_json()["type"] == "connection_ack"
        chat = {"content": "Hi", "options": {"max_tokens": 2}}
        ws.send_json({"type": "chat", "id": "first", "payload": chat})
        while (message := ws.receive_json())["type"] not in ("done", "error"):
            pass
        assert message["type"] == "done", message
        ws.send_json({"type": "chat", "id": "second", "payload": chat})
        refused = ws.receive_json()
        assert (refused["type"], refused["id"]) == ("error", "second"), refused
        assert refused["payload"]["code"] == "rate_limited"
        assert refused["payload"]["retry_after"] >= 1
        # The socket is still served.
        ws.send_json({"type": "ping", "id": "p"})
        assert ws.receive_json()["type"] == "pong"
    tenant_id = _tenant_of(client, services, auth)
    page = client.blocking_portal.call(services.conversations.list, tenant_id)
    assert len(page.items) == 1, "the refused turn stored nothing"


def test_websocket_turns_share_the_keys_turn_slots(
    client: TestClient[Any], services: State, limits: RateLimitSettings
) -> None:
    """``max_turns_per_key`` counts WebSocket turns too, and frees the slot when they end."""
    limits.max_turns_per_key = 1
    auth = new_key(client, services)
    token = auth["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": token}})
        assert ws.receive_json()["type"] == "connection_ack"
        long = {"content": "Tell me a long story.", "options": {"max_tokens": 200}}
        ws.send_json({"type": "chat", "id": "long", "payload": long})
        while ws.receive_json()["type"] != "token":
            pass
        ws.send_json({"type": "chat", "id": "short", "payload": {"content": "Hi"}})
        while not ((m := ws.receive_json())["type"] == "error" and m["id"] == "short"):
            pass
        assert m["payload"]["code"] == "too_many_turns"
        ws.send_json({"type": "cancel", "id": "long"})
        while not ((m := ws.receive_json())["id"] == "long" and m["type"] in ("done", "error")):
            pass
    assert services.rate_limiter is not None
    deadline = time.monotonic() + 10
    while services.rate_limiter.running_turns(_subject(client, services, auth)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert services.rate_limiter.running_turns(_subject(client, services, auth)) == 0
