"""``/v1/admin`` and JWT sign-in against a real server: what an operator and an admin see.

One server with JWTs on (HS256); tenants, keys and tokens come from the ``ragserve``
CLI as an operator would make them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SECRET = "admin-api-e2e-secret-" + "y" * 40
JWT_ENV = {
    "RAGSERVE_AUTH_JWT_SECRET": SECRET,
    "RAGSERVE_AUTH_JWT_AUDIENCE": "ragserve-e2e",
    "RAGSERVE_AUTH_JWT_ISSUER": "https://idp.e2e",
    # These tests mint tokens for subjects no admin recorded (the role claim mode);
    # the recorded-users-only default is proven in tests/integration/app/test_auth.py.
    "RAGSERVE_AUTH_JWT_REQUIRE_USER": "false",
}


@dataclass
class Ops:
    server: Server
    admin_key: str
    """An admin of tenant ``acme``."""
    user_key: str
    """A plain user of ``acme``."""
    platform_key: str
    """An admin of tenant ``ops`` with the platform scope."""
    acme_id: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=120)

    def token(self, tenant: str, subject: str, role: str = "user") -> str:
        return self.server.cli(
            "token", "--tenant", tenant, "--subject", subject, "--role", role
        ).strip()


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    data_dir: Path = tmp_path_factory.mktemp("admin-api")
    server = Server(data_dir, extra_env=JWT_ENV)
    server.cli("migrate")
    acme_id = server.cli("tenants", "create", "acme").split()[-1]
    admin_key = server.cli("keys", "create", "--tenant", "acme", "--role", "admin").split()[-1]
    user_key = server.create_key("acme")
    platform_key = server.cli(
        "keys", "create", "--tenant", "ops", "--role", "admin",
        "--scope", "platform:admin",
    ).split()[-1]  # fmt: skip
    server.start()
    try:
        yield Ops(server, admin_key, user_key, platform_key, acme_id)
    finally:
        server.stop()


def _error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"], response.text


def test_non_admins_get_403_with_a_clear_message(ops: Ops) -> None:
    with ops.client(ops.user_key) as user:
        _error(user.get("/v1/admin/tenants"), 403, "needs the admin role")
        _error(user.post(f"/v1/admin/tenants/{ops.acme_id}/keys", json={}), 403, "admin role")
    labeler = ops.token("acme", "lara", "labeler")
    with ops.client(labeler) as client:
        _error(client.get(f"/v1/admin/tenants/{ops.acme_id}/users"), 403, "admin role")
    with ops.client() as anonymous:
        _error(anonymous.get("/v1/admin/tenants"), 401, "Authorization")


def test_tenant_admin_sees_only_its_tenant_and_cannot_create_tenants(ops: Ops) -> None:
    with ops.client(ops.admin_key) as admin:
        assert [t["name"] for t in admin.get("/v1/admin/tenants").json()["items"]] == ["acme"]
        _error(admin.post("/v1/admin/tenants", json={"name": "evil"}), 403, "platform admin")
        with ops.client(ops.platform_key) as platform:
            ops_id = next(
                t["id"] for t in platform.get("/v1/admin/tenants").json()["items"]
                if t["name"] == "ops"
            )  # fmt: skip
        _error(admin.get(f"/v1/admin/tenants/{ops_id}"), 404, "not found")
        _error(admin.get(f"/v1/admin/tenants/{ops_id}/keys"), 404, "not found")
        granted = admin.post(
            f"/v1/admin/tenants/{ops.acme_id}/keys", json={"scopes": ["platform:admin"]}
        )
        _error(granted, 403, "Only a platform admin")


def test_platform_admin_creates_tenants_and_their_first_admin_key(ops: Ops) -> None:
    with ops.client(ops.platform_key) as platform:
        created = platform.post("/v1/admin/tenants", json={"name": "initech"})
        assert created.status_code == 201, created.text
        tenant = created.json()
        _error(platform.post("/v1/admin/tenants", json={"name": "initech"}), 409, "already")
        _error(platform.post("/v1/admin/tenants", json={"name": "  "}), 400, "name")
        names = {t["name"] for t in platform.get("/v1/admin/tenants").json()["items"]}
        assert {"acme", "ops", "initech"} <= names
        key = platform.post(
            f"/v1/admin/tenants/{tenant['id']}/keys", json={"name": "first", "role": "admin"}
        ).json()
    with ops.client(key["secret"]) as initech_admin:
        listed = initech_admin.get("/v1/admin/tenants").json()["items"]
        assert [t["name"] for t in listed] == ["initech"]


def test_keys_are_shown_once_scoped_rate_limited_and_revocable(ops: Ops) -> None:
    base = f"/v1/admin/tenants/{ops.acme_id}/keys"
    with ops.client(ops.admin_key) as admin:
        response = admin.post(
            base,
            json={
                "name": "ci",
                "role": "labeler",
                "scopes": ["chat", "search"],
                "rate_limit": {"burst": 50, "rate_per_s": 5},
            },
        )
        assert response.status_code == 201, response.text
        created = response.json()
        secret, key = created["secret"], created["key"]
        assert secret.startswith("rsk_")
        assert secret.startswith(key["prefix"])
        assert (key["role"], key["scopes"], key["rate_limit"]) == (
            "labeler",
            ["chat", "search"],
            {"burst": 50, "rate_per_s": 5.0},
        )
        shown_again = admin.get(f"{base}/{key['id']}").text + admin.get(base).text
        assert secret not in shown_again, "a secret is shown once"
        with ops.client(secret) as ci:
            assert ci.get("/v1/conversations").status_code == 200
        revoked = admin.delete(f"{base}/{key['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] is True
        with ops.client(secret) as ci:
            _error(ci.get("/v1/conversations"), 401, "revoked")
        assert admin.delete(f"{base}/{key['id']}").json()["revoked"] is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"role": "root"}, 400),
        ({"scopes": ["has space"]}, 400),
        ({"scopes": [""]}, 400),
        ({"rate_limit": {"burst": 0, "rate_per_s": 1}}, 400),
        ({"rate_limit": {"burst": 10}}, 400),
        ({"name": "x" * 129}, 400),
        ({"surprise": 1}, 400),
    ],
)
def test_bad_key_requests_are_refused_and_create_nothing(
    ops: Ops, body: dict[str, object], status: int
) -> None:
    base = f"/v1/admin/tenants/{ops.acme_id}/keys"
    with ops.client(ops.admin_key) as admin:
        before = admin.get(base).json()["items"]
        response = admin.post(base, json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]
        assert admin.get(base).json()["items"] == before


def test_users_are_created_listed_disabled_and_that_locks_their_tokens(ops: Ops) -> None:
    base = f"/v1/admin/tenants/{ops.acme_id}/users"
    token = ops.token("acme", "dana", "admin")
    with ops.client(ops.admin_key) as admin:
        created = admin.post(base, json={"subject": "dana", "name": "Dana", "role": "user"})
        assert created.status_code == 201, created.text
        user = created.json()
        _error(admin.post(base, json={"subject": "dana"}), 409, "already")
        _error(admin.post(base, json={"subject": "x", "role": "god"}), 400, "role")
        _error(admin.patch(f"{base}/{user['id']}", json={}), 400, "at least one")
        _error(admin.get(f"{base}/no-such-user"), 404, "not found")
        assert "dana" in {u["subject"] for u in admin.get(base).json()["items"]}
        with ops.client(token) as dana:
            # The stored role (user) wins over the token's claim (admin).
            _error(dana.get("/v1/admin/tenants"), 403, "admin role")
            assert dana.get("/v1/conversations").status_code == 200
        disabled = admin.patch(f"{base}/{user['id']}", json={"disabled": True}).json()
        assert disabled["disabled"] is True
        with ops.client(token) as dana:
            _error(dana.get("/v1/conversations"), 401, "disabled")
        admin.patch(f"{base}/{user['id']}", json={"disabled": False})
        with ops.client(token) as dana:
            assert dana.get("/v1/conversations").status_code == 200


def test_bad_tokens_get_401_with_a_reason(ops: Ops) -> None:
    now = int(time.time())
    claims = {
        "sub": "eve",
        "aud": "ragserve-e2e",
        "iss": "https://idp.e2e",
        "exp": now + 600,
        "tenant_id": ops.acme_id,
    }
    cases = {
        "algorithm 'none'": jwt.encode(claims, None, algorithm="none"),
        "expired": jwt.encode({**claims, "exp": now - 120}, SECRET, algorithm="HS256"),
        "audience": jwt.encode({**claims, "aud": "other"}, SECRET, algorithm="HS256"),
        "issuer": jwt.encode({**claims, "iss": "https://evil"}, SECRET, algorithm="HS256"),
        "signature": jwt.encode(claims, "z" * 64, algorithm="HS256"),
        "tenant does not exist": jwt.encode(
            {**claims, "tenant_id": "nope"}, SECRET, algorithm="HS256"
        ),
    }
    with ops.client() as client:
        for fragment, token in cases.items():
            response = client.get("/v1/conversations", headers={"Authorization": f"Bearer {token}"})
            _error(response, 401, fragment)


def _ws_init(ops: Ops, token: str) -> dict[str, object]:
    with connect(ops.server.ws_url) as socket:
        socket.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        try:
            return dict(json.loads(socket.recv(timeout=30)))
        except ConnectionClosed as closed:
            frame = closed.rcvd
            return {"closed": frame and frame.code, "reason": frame and frame.reason}


def test_a_good_token_works_on_rest_and_websocket(ops: Ops) -> None:
    token = ops.token("acme", "frank")
    with ops.client(token) as frank:
        created = frank.post("/v1/conversations", json={"title": "by jwt"})
        assert created.status_code == 201, created.text
        assert frank.get(f"/v1/conversations/{created.json()['id']}").status_code == 200
    assert _ws_init(ops, token)["type"] == "connection_ack"
    expired = jwt.encode(
        {
            "sub": "frank",
            "aud": "ragserve-e2e",
            "iss": "https://idp.e2e",
            "exp": int(time.time()) - 120,
            "tenant_id": ops.acme_id,
        },
        SECRET,
        algorithm="HS256",
    )
    refused = _ws_init(ops, expired)
    assert refused["closed"] == 4401
    assert "expired" in str(refused["reason"])
