"""The control plane through the API, with the real engine: the registry admin API,
canary and version stored on every answer, shadow answers stored and summarised and
never shown, cost per answer and the usage report.

One real app (SQLite, Qdrant local mode, the real embedder and engine) driven through
Litestar's test client. Two registry versions of the packaged model, both served by
the embedded engine, stand in for two deployments (the end-to-end tests route to
real ``ragserve inference`` processes).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar.testing import TestClient

from app.core.settings import Settings
from app.server.factory import create_app
from kernel.migrations import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.datastructures import State

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("registry-api"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.generation.max_tokens = 6
    settings.safety.enabled = False
    settings.rate_limit.enabled = False
    upgrade(settings.database_url)
    with TestClient(create_app(settings), timeout=120) as test_client:
        yield test_client


def _key(
    client: TestClient[Any], role: str = "user", scopes: tuple[str, ...] = ("chat",)
) -> tuple[str, str]:
    state: State = client.app.state
    tenant = client.blocking_portal.call(state.tenants.ensure, f"t-{uuid.uuid4().hex[:10]}")
    created = client.blocking_portal.call(
        lambda: state.api_keys.create(tenant.id, scopes=scopes, role=role)
    )
    return tenant.id, created.secret


@pytest.fixture(scope="module")
def platform(client: TestClient[Any]) -> dict[str, str]:
    _, key = _key(client, "admin", ("chat", "platform:admin"))
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def registered(client: TestClient[Any], platform: dict[str, str]) -> None:
    """The packaged model in the registry with two embedded versions, a and b."""
    assert (
        client.post("/v1/admin/models", json={"name": MODEL}, headers=platform).status_code == 201
    )
    for version, price in (("a", 1.0), ("b", 3.0)):
        response = client.post(
            f"/v1/admin/models/{MODEL}/versions",
            json={"version": version, "backend": "embedded", "price_completion_per_1k": price},
            headers=platform,
        )
        assert response.status_code == 201, response.text
    assert response.json()["rollout"]["stable"] == "a"


def _chat(client: TestClient[Any], key: str, conversation: str | None = None) -> dict[str, Any]:
    path = "/v1/conversations"
    auth = {"Authorization": f"Bearer {key}"}
    if conversation is None:
        conversation = client.post(path, json={}, headers=auth).json()["id"]
    response = client.post(
        f"{path}/{conversation}/messages",
        json={"content": "What is a bee?", "options": {"max_tokens": 4, "retrieval_k": 0}},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_only_a_platform_admin_changes_the_registry_and_bad_input_is_a_clear_4xx(
    client: TestClient[Any], platform: dict[str, str], registered: None
) -> None:
    _, admin_key = _key(client, "admin")
    tenant_admin = {"Authorization": f"Bearer {admin_key}"}
    denied = client.post("/v1/admin/models", json={"name": "x"}, headers=tenant_admin)
    assert denied.status_code == 403
    assert client.get("/v1/admin/models", headers=tenant_admin).status_code == 200

    bad = [
        # The schema states the registry's name rule: a body that breaks it is a 400.
        ("/v1/admin/models", {"name": "Has Spaces"}, 400),
        ("/v1/admin/models", {"name": MODEL}, 409),
        (f"/v1/admin/models/{MODEL}/versions", {"version": "c", "backend": "remote"}, 422),
        (f"/v1/admin/models/{MODEL}/versions", {"version": "a", "backend": "embedded"}, 409),
        ("/v1/admin/models/nope/versions", {"version": "a", "backend": "embedded"}, 404),
        (f"/v1/admin/models/{MODEL}/versions", {"version": "c", "backend": "gpu"}, 400),
        # A bad list of tenants was once a 500 (a field named like a dependency).
        ("/v1/admin/models", {"name": "x", "allowed_tenants": {}}, 400),
    ]
    for path, body, status in bad:
        response = client.post(path, json=body, headers=platform)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["error"]["message"]
    wrong_split = client.put(
        f"/v1/admin/models/{MODEL}/rollout",
        json={"stable": "a", "canary": "zzz", "canary_percent": 5},
        headers=platform,
    )
    assert wrong_split.status_code == 422
    assert "zzz" in wrong_split.json()["error"]["message"]
    current = client.get(f"/v1/admin/models/{MODEL}", headers=platform).json()
    assert current["rollout"]["canary"] is None, "a refused change leaves the rollout as it was"
    assert client.post(f"/v1/admin/models/{MODEL}/promote", headers=platform).status_code == 409
    deleting = client.delete(f"/v1/admin/models/{MODEL}/versions/a", headers=platform)
    assert deleting.status_code == 409


def test_the_canary_answers_its_share_and_every_answer_carries_its_version_and_cost(
    client: TestClient[Any], platform: dict[str, str], registered: None
) -> None:
    split = client.put(
        f"/v1/admin/models/{MODEL}/rollout",
        json={"stable": "a", "canary": "b", "canary_percent": 50},
        headers=platform,
    )
    assert split.status_code == 200, split.text
    tenant, key = _key(client)
    try:
        versions = []
        for _ in range(12):
            answer = _chat(client, key)["message"]
            assert answer["model"] == MODEL
            assert answer["usage"]["cost"] >= 0
            versions.append(answer["model_version"])
        assert set(versions) == {"a", "b"}, versions

        # A conversation keeps its version for its later turns.
        first = _chat(client, key)
        conversation, version = first["conversation_id"], first["message"]["model_version"]
        for _ in range(3):
            assert _chat(client, key, conversation)["message"]["model_version"] == version
    finally:
        client.post(f"/v1/admin/models/{MODEL}/rollback", headers=platform)

    usage = client.get(f"/v1/admin/tenants/{tenant}/usage", headers=platform).json()
    assert usage["turns"] == 16
    by_version = {v["version"]: v for v in usage["by_version"]}
    assert set(by_version) == {"a", "b"}
    for version, price in (("a", 1.0), ("b", 3.0)):
        row = by_version[version]
        assert row["cost"] == pytest.approx(row["completion_tokens"] * price / 1000, rel=1e-6)
    _, other_admin = _key(client, "admin")
    hidden = client.get(
        f"/v1/admin/tenants/{tenant}/usage", headers={"Authorization": f"Bearer {other_admin}"}
    )
    assert hidden.status_code == 404, "another tenant's usage is a 404 to a tenant admin"
    bad_window = client.get(
        f"/v1/admin/tenants/{tenant}/usage",
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=platform,
    )
    assert bad_window.status_code == 422


def test_a_shadow_answer_is_stored_and_summarised_and_never_reaches_the_client(
    client: TestClient[Any], platform: dict[str, str], registered: None
) -> None:
    shadowed = client.put(
        f"/v1/admin/models/{MODEL}/rollout",
        json={"stable": "a", "shadows": [{"version": "b", "sample_rate": 1.0}]},
        headers=platform,
    )
    assert shadowed.status_code == 200, shadowed.text
    _, key = _key(client)
    state: State = client.app.state
    try:
        answers = [_chat(client, key)["message"] for _ in range(3)]
        client.blocking_portal.call(state.gateway.join_shadows)
    finally:
        client.put(f"/v1/admin/models/{MODEL}/rollout", json={"stable": "a"}, headers=platform)
    for answer in answers:
        assert answer["model_version"] == "a", "the client sees the primary's answer only"
        rows = client.blocking_portal.call(state.shadow_store.list, answer["id"])
        assert [r.version for r in rows] == ["b"]
        assert rows[0].primary_version == "a"
        assert rows[0].error is None
        # Same model, same greedy prompt: the shadow answers like the primary.
        assert rows[0].content == answer["content"]
        assert rows[0].similarity == pytest.approx(1.0, abs=1e-3)
    summary = client.get(f"/v1/admin/models/{MODEL}/shadows/b/summary", headers=platform)
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["answers"] >= 3
    assert body["failed"] == 0
    assert body["similarity"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert body["latency_ms"]["p50"] > 0
    assert body["primary_versions"] == ["a"]


def test_models_lists_what_the_tenant_may_use(
    client: TestClient[Any], platform: dict[str, str], registered: None
) -> None:
    _, key = _key(client)
    auth = {"Authorization": f"Bearer {key}"}
    created = client.post(
        "/v1/admin/models",
        json={"name": "private-model", "allowed_tenants": ["someone-else"]},
        headers=platform,
    )
    assert created.status_code == 201
    client.post(
        "/v1/admin/models/private-model/versions",
        json={"version": "v1", "backend": "embedded"},
        headers=platform,
    )
    ids = [m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]]
    assert MODEL in ids
    assert "private-model" not in ids
    refused = client.post(
        "/v1/chat/completions",
        json={"model": "private-model", "messages": [{"role": "user", "content": "hi"}]},
        headers=auth,
    )
    assert refused.status_code == 404
