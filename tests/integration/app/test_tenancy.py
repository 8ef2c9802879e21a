"""People inside one tenant kept apart: owners, scopes, platform admin, live credentials.

One real app (SQLite, Qdrant local mode, the real embedder and engine) driven over
HTTP and WebSocket through Litestar's test client. Every test makes its own tenant,
so the order of tests does not matter.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from pydantic import SecretStr

from app.auth.jwt import mint_token
from app.core.settings import Settings
from app.server.factory import create_app
from kernel.migrations import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.datastructures import State

    from conversation import PrincipalRole

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]
SECRET = "tenancy-secret-" + "x" * 40
OPS_TOKEN = "ops-" + "o" * 40


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("tenancy"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.generation.max_tokens = 4
    settings.safety.enabled = False
    settings.auth.jwt_secret = SecretStr(SECRET)
    settings.auth.jwt_audience = "ragserve-tests"
    settings.auth.jwt_issuer = "https://idp.example"
    settings.auth.ops_token = SecretStr(OPS_TOKEN)
    upgrade(settings.database_url)
    with TestClient(create_app(settings), timeout=120) as test_client:
        yield test_client


@dataclass
class Tenant:
    client: TestClient[Any]
    id: str

    @property
    def state(self) -> State:
        found: State = self.client.app.state
        return found

    def key(self, role: str = "user", scopes: tuple[str, ...] = ("chat",)) -> dict[str, str]:
        created = self.client.blocking_portal.call(
            lambda: self.state.api_keys.create(self.id, scopes=scopes, role=role)
        )
        return {"Authorization": f"Bearer {created.secret}"}

    def token(self, subject: str, role: PrincipalRole = "user", ttl_s: float = 600) -> str:
        self.client.blocking_portal.call(lambda: self.state.users.create(self.id, subject, role))
        return mint_token(
            self.state.settings.auth, subject=subject, tenant_id=self.id, role=role, ttl_s=ttl_s
        )


@pytest.fixture
def tenant(client: TestClient[Any]) -> Tenant:
    state: State = client.app.state
    info = client.blocking_portal.call(state.tenants.ensure, f"t-{uuid.uuid4().hex[:10]}")
    return Tenant(client, info.id)


def _turn(client: TestClient[Any], auth: dict[str, str], conversation_id: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": "Hi", "options": {"max_tokens": 2, "retrieval_k": 0}},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_user_reaches_only_their_own_conversations_and_an_admin_all(
    client: TestClient[Any], tenant: Tenant
) -> None:
    """Guards ownership inside a tenant: another user's conversation is a 404 everywhere."""
    alice, bob = tenant.key(), tenant.key()
    labeler, admin = tenant.key("labeler"), tenant.key("admin")
    mine = client.post("/v1/conversations", json={"title": "alice's"}, headers=alice).json()
    answer = _turn(client, alice, mine["id"])["message"]["id"]
    path = f"/v1/conversations/{mine['id']}"
    for intruder in (bob, labeler):
        assert client.get(path, headers=intruder).status_code == 404
        chat = client.post(f"{path}/messages", json={"content": "x"}, headers=intruder)
        assert chat.status_code == 404
        assert chat.json() == {"error": {"code": "not_found", "message": "conversation not found"}}
        rating = {"rating": -1, "comment": "x"}
        feedback = client.post(f"/v1/messages/{answer}/feedback", json=rating, headers=intruder)
        assert feedback.status_code == 404
        completion = {
            "model": "ragserve",
            "messages": [{"role": "user", "content": "x"}],
            "conversation_id": mine["id"],
        }
        assert (
            client.post("/v1/chat/completions", json=completion, headers=intruder).status_code
            == 404
        )
        assert client.delete(path, headers=intruder).status_code == 404
        assert client.get("/v1/conversations", headers=intruder).json()["data"] == []
    listed = client.get("/v1/conversations", headers=alice).json()["data"]
    assert [c["id"] for c in listed] == [mine["id"]]
    assert client.get(path, headers=admin).status_code == 200
    admin_list = client.get("/v1/conversations", headers=admin).json()["data"]
    assert [c["id"] for c in admin_list] == [mine["id"]]
    stored = client.get(path, headers=alice).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"], "the 404s changed nothing"
    good = {"rating": 1}
    assert (
        client.post(f"/v1/messages/{answer}/feedback", json=good, headers=alice).status_code == 201
    )
    assert client.delete(path, headers=alice).status_code == 204


def test_a_conversation_from_before_owners_is_for_admins_only(
    client: TestClient[Any], tenant: Tenant
) -> None:
    legacy = client.blocking_portal.call(tenant.state.conversations.create, tenant.id, "old")
    assert legacy.owner is None
    path = f"/v1/conversations/{legacy.id}"
    assert client.get(path, headers=tenant.key()).status_code == 404
    assert client.get(path, headers=tenant.key("admin")).status_code == 200


def test_scopes_are_enforced_route_by_route(client: TestClient[Any], tenant: Tenant) -> None:
    """Guards the scope table of docs/security.md."""
    chat, reader = tenant.key(), tenant.key(scopes=("documents:read",))
    writer, admin = tenant.key(scopes=("documents:write",)), tenant.key("admin", ())
    document = {"name": "a.md", "content": "# Bees\n\nBees make honey."}
    for caller in (chat, reader):
        refused = client.post("/v1/documents", json=document, headers=caller)
        assert refused.status_code == 403
        assert "documents:write" in refused.json()["error"]["message"]
    uploaded = client.post("/v1/documents", json=document, headers=writer)
    assert uploaded.status_code == 202, uploaded.text
    document_id = uploaded.json()["documents"][0]["document"]["id"]
    assert client.post("/v1/documents", json=document, headers=admin).status_code in (200, 202)
    for caller in (chat, reader):
        assert client.get("/v1/documents", headers=caller).status_code == 200
        assert client.get(f"/v1/documents/{document_id}", headers=caller).status_code == 200
        search = client.post("/v1/search", json={"query": "bees"}, headers=caller)
        assert search.status_code == 200
        assert client.delete(f"/v1/documents/{document_id}", headers=caller).status_code == 403
    assert client.get("/v1/documents", headers=writer).status_code == 403
    for path in ("/v1/conversations", "/v1/models"):
        assert client.get(path, headers=reader).status_code == 403
        assert client.get(path, headers=chat).status_code == 200
    assert client.delete(f"/v1/documents/{document_id}", headers=writer).status_code == 204


def test_a_tokens_own_platform_scope_reaches_no_other_tenant(
    client: TestClient[Any], tenant: Tenant
) -> None:
    """Guards against self-issued platform admin: only stored keys or the allow-list."""
    tenant.token("root", "admin")
    forged = mint_token(
        tenant.state.settings.auth,
        subject="root",
        tenant_id=tenant.id,
        role="admin",
        scopes=["chat", "platform:admin"],
    )
    auth = {"Authorization": f"Bearer {forged}"}
    assert [t["id"] for t in client.get("/v1/admin/tenants", headers=auth).json()["items"]] == [
        tenant.id
    ]
    assert client.post("/v1/admin/tenants", json={"name": "x"}, headers=auth).status_code == 403
    assert client.get("/v1/admin/routing", headers=auth).status_code == 403
    platform = tenant.key("admin", ("chat", "platform:admin"))
    assert client.get("/v1/admin/routing", headers=platform).status_code == 200


def _init(ws: Any, token: str) -> None:
    ws.send_json({"type": "connection_init", "payload": {"token": token}})
    assert ws.receive_json()["type"] == "connection_ack"


def _closed_with(ws: Any) -> int:
    """The close code the server sent next (skipping frames of earlier turns)."""
    try:
        while True:
            ws.receive(timeout=30)
    except WebSocketDisconnect as closed:
        return int(closed.code)


def test_a_socket_rechecks_its_credential_at_every_chat(
    client: TestClient[Any], tenant: Tenant
) -> None:
    """Guards revocation: a revoked key stops at its next chat with 4401."""
    created = client.blocking_portal.call(tenant.state.api_keys.create, tenant.id)
    chat = {"type": "chat", "id": "t1", "payload": {"content": "Hi", "options": {"max_tokens": 2}}}
    with client.websocket_connect("/v1/ws") as ws:
        _init(ws, created.secret)
        client.blocking_portal.call(tenant.state.api_keys.revoke, tenant.id, created.info.id)
        ws.send_json(chat)
        assert _closed_with(ws) == 4401


def test_a_socket_stops_for_a_disabled_user_and_closes_when_its_token_expires(
    client: TestClient[Any], tenant: Tenant
) -> None:
    token = tenant.token("carol")
    carol = client.blocking_portal.call(tenant.state.users.lookup, tenant.id, "carol")
    assert carol is not None
    with client.websocket_connect("/v1/ws") as ws:
        _init(ws, token)
        client.blocking_portal.call(
            lambda: tenant.state.users.update(tenant.id, carol.id, disabled=True)
        )
        ws.send_json({"type": "resume", "id": "r1", "payload": {"message_id": str(uuid.uuid4())}})
        assert _closed_with(ws) == 4401
    short = tenant.token("dave", ttl_s=2)
    with client.websocket_connect("/v1/ws") as ws:
        _init(ws, short)
        started = time.monotonic()
        assert _closed_with(ws) == 4401
        assert time.monotonic() - started < 10


def test_a_socket_cannot_continue_someone_elses_conversation(
    client: TestClient[Any], tenant: Tenant
) -> None:
    alice = tenant.key()
    mine = client.post("/v1/conversations", json={}, headers=alice).json()["id"]
    bob = client.blocking_portal.call(tenant.state.api_keys.create, tenant.id).secret
    with client.websocket_connect("/v1/ws") as ws:
        _init(ws, bob)
        ws.send_json(
            {"type": "chat", "id": "t1", "payload": {"conversation_id": mine, "content": "x"}}
        )
        answer = ws.receive_json()
        assert (answer["type"], answer["payload"]["code"]) == ("error", "not_found")


def test_bad_credentials_from_one_address_are_throttled_before_any_lookup(
    client: TestClient[Any], tenant: Tenant
) -> None:
    limits = tenant.state.settings.rate_limit
    saved = (limits.ip_auth_failures_burst, limits.ip_auth_failures_rate)
    limits.ip_auth_failures_burst, limits.ip_auth_failures_rate = 3, 0.01
    good = tenant.key()
    try:
        answers = [
            client.get("/v1/conversations", headers={"Authorization": f"Bearer rsk_bad{i}"})
            for i in range(5)
        ]
        assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        # While the address is throttled even a good key waits (nothing is looked up).
        assert client.get("/v1/conversations", headers=good).status_code == 429
    finally:
        limits.ip_auth_failures_burst, limits.ip_auth_failures_rate = saved
        # Refill the address's budget for the other tests.
        limits.ip_auth_failures_rate = 1000.0
        time.sleep(0.05)
        assert client.get("/v1/conversations", headers=good).status_code == 200
        limits.ip_auth_failures_rate = saved[1]


def test_metrics_and_readiness_detail_need_the_ops_token(client: TestClient[Any]) -> None:
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "ragserve:" in client.get("/metrics", headers=ops).text
    public = client.get("/readyz")
    assert public.json() == {"status": "ready"}
    detail = client.get("/readyz", headers=ops).json()
    assert set(detail["checks"].values()) == {"ok"}
