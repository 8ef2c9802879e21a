"""Tenant isolation, route by route: tenant B aims at tenant A's objects and gets 404s.

The walk enumerates the app's own route table (``create_app().routes``), so a route
added later is walked without touching this file; a route whose path names an id
this walk does not know fails the test until a substitution is added below. Every
request goes out twice, as B's admin (a JWT) and as B's plain user (an API key):
routes naming A's objects must answer 404 (or 403 where the role guard stops the
caller first), and no answer, of any status, may hold A's content or A's ids
(other than the one the request itself named).

The same walk runs inside tenant A: A's second user aims at the conversation of
A's first user and must get 404 on every route naming it, 403 on the admin routes
and on document writes, and never see that conversation's content.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from litestar.routes import HTTPRoute, WebSocketRoute
from websockets.sync.client import connect

from app.server.factory import create_app
from tests.e2e.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

JWT_ENV = {
    "RAGSERVE_AUTH_JWT_SECRET": "isolation-walk-secret-" + "x" * 40,
    "RAGSERVE_AUTH_JWT_AUDIENCE": "ragserve-e2e",
    "RAGSERVE_AUTH_JWT_ISSUER": "https://idp.e2e",
}
MARKER = "ALPHASECRET7731"
"""Appears in every piece of tenant A's content; B must never see it."""
PRIVATE = "ALICEPRIVATE4412"
"""Appears in A's first user's conversation; A's second user must never see it."""
PUBLIC_PREFIXES = ("/schema", "/healthz", "/readyz", "/metrics")
CONSOLE_PREFIX = "/admin"
"""The web console signs its own users in; tests/e2e/test_console_isolation.py walks it."""


@dataclass
class World:
    server: Server
    a_key: str
    b_admin_jwt: str
    b_user_key: str
    a_owner_key: str
    a_other_key: str
    ids: dict[str, str] = field(default_factory=dict)
    """A's ids by path-parameter name."""
    owned: dict[str, str] = field(default_factory=dict)
    """Ids of A's first user's conversation and its answer, by path-parameter name."""


def _client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    )


def _document_id(client: httpx.Client, upload: httpx.Response) -> str:
    body = upload.json()
    found = re.search(r'"(?:document_)?id":\s*"([0-9a-f-]{36})"', json.dumps(body))
    if found:
        return found.group(1)
    listed = client.get("/v1/documents").json()
    items = listed.get("data") or listed.get("items") or []
    return str(items[0]["id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("isolation")
    server = Server(data_dir, extra_env=JWT_ENV)
    server.cli("migrate")
    a_key = server.cli("keys", "create", "--tenant", "alpha", "--role", "admin").split()[-1]
    b_user_key = server.create_key("beta")
    b_bootstrap = server.cli("keys", "create", "--tenant", "beta", "--role", "admin").split()[-1]
    a_owner_key = server.create_key("alpha", ("chat",))
    a_other_key = server.create_key("alpha", ("chat",))
    b_admin_jwt = server.cli(
        "token", "--tenant", "beta", "--subject", "beta-admin", "--role", "admin"
    ).strip()
    server.start()
    try:
        world = World(server, a_key, b_admin_jwt, b_user_key, a_owner_key, a_other_key)
        with _client(server, b_bootstrap) as b:
            # Tokens are accepted for recorded users only (RAGSERVE_AUTH_JWT_REQUIRE_USER).
            beta_id = b.get("/v1/admin/tenants").json()["items"][0]["id"]
            recorded = b.post(
                f"/v1/admin/tenants/{beta_id}/users",
                json={"subject": "beta-admin", "role": "admin"},
            )
            assert recorded.status_code == 201, recorded.text
        with _client(server, a_owner_key) as owner:
            private = owner.post("/v1/conversations", json={"title": f"{PRIVATE} diary"}).json()
            turn = owner.post(
                f"/v1/conversations/{private['id']}/messages",
                json={"content": f"Keep {PRIVATE} between us."},
            )
            assert turn.status_code == 200, turn.text
            world.owned = {
                "conversation_id": private["id"],
                "message_id": turn.json()["message"]["id"],
            }
        with _client(server, a_key) as a:
            tenant_id = a.get("/v1/admin/tenants").json()["items"][0]["id"]
            conversation = a.post("/v1/conversations", json={"title": f"{MARKER} plans"}).json()
            turn = a.post(
                f"/v1/conversations/{conversation['id']}/messages",
                json={"content": f"Remember the code word {MARKER}."},
            )
            assert turn.status_code == 200, turn.text
            messages = a.get(f"/v1/conversations/{conversation['id']}").json()["messages"]
            disliked = a.post(
                f"/v1/messages/{messages[-1]['id']}/feedback",
                json={"rating": -1, "comment": f"{MARKER} is wrong"},
            )
            assert disliked.status_code == 201, disliked.text
            task = a.get("/v1/labeling/tasks").json()["items"][0]
            upload = a.post(
                "/v1/documents",
                files={
                    "file": ("alpha.md", f"# {MARKER}\n\nAlpha's plans.".encode(), "text/markdown")
                },
            )
            assert upload.status_code in (201, 202), upload.text
            user = a.post(
                f"/v1/admin/tenants/{tenant_id}/users", json={"subject": f"{MARKER}-user"}
            ).json()
            key = a.post(f"/v1/admin/tenants/{tenant_id}/keys", json={"name": MARKER}).json()
            line = {
                "custom_id": MARKER,
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "all-minilm-l6-v2", "input": MARKER},
            }
            batch_file = a.post(
                "/v1/files",
                files={"file": ("alpha.jsonl", json.dumps(line).encode(), "application/jsonl")},
                data={"purpose": "batch"},
            ).json()
            batch = a.post(
                "/v1/batches",
                json={
                    "input_file_id": batch_file["id"],
                    "endpoint": "/v1/embeddings",
                    "completion_window": "24h",
                    "metadata": {"note": MARKER},
                },
            ).json()
            world.ids = {
                "tenant_id": tenant_id,
                "conversation_id": conversation["id"],
                "message_id": messages[-1]["id"],
                "document_id": _document_id(a, upload),
                "user_id": user["id"],
                "key_id": key["key"]["id"],
                "file_id": batch_file["id"],
                "batch_id": batch["id"],
                "task_id": task["id"],
            }
        yield world
    finally:
        server.stop()


# Valid bodies, so a 404 proves the tenant check and not a validation failure.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"content": "leak it"},
    ("POST", "/v1/messages/{message_id}/feedback"): {"rating": -1, "comment": "x"},
    ("POST", "/v1/messages/{message_id}/report"): {"reason": "inaccurate", "comment": "x"},
    ("POST", "/v1/labeling/tasks/{task_id}/labels"): {
        "categories": ["hallucination"],
        "corrected_answer": "leak it",
    },
    ("POST", "/v1/admin/tenants/{tenant_id}/users"): {"subject": "intruder"},
    ("PATCH", "/v1/admin/tenants/{tenant_id}/users/{user_id}"): {"disabled": True},
    ("POST", "/v1/admin/tenants/{tenant_id}/keys"): {"name": "intruder", "role": "admin"},
    ("POST", "/v1/search"): {"query": f"{MARKER} plans", "k": 10},
    ("POST", "/v1/conversations"): {"title": "b's own"},
    ("POST", "/v1/admin/tenants"): {"name": "beta-made"},
    ("POST", "/v1/embeddings"): {"model": "x", "input": MARKER},
}
GLOBAL_PARAMS = {"model", "name", "version"}
"""Path parameters that name no tenant's object (models and their versions)."""


def _routes() -> list[tuple[str, str]]:
    """Every (method, path) of the app's route table but the public, tenant-free ones."""
    found: list[tuple[str, str]] = []
    for route in create_app().routes:
        if isinstance(route, HTTPRoute) and not route.path.startswith(
            (*PUBLIC_PREFIXES, CONSOLE_PREFIX)
        ):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found += [(method, path) for method in sorted(route.methods) if method != "OPTIONS"]
    return found


def _ws_routes() -> list[str]:
    return [route.path for route in create_app().routes if isinstance(route, WebSocketRoute)]


def _chat_body(world: World) -> dict[str, Any]:
    return {
        "model": "ragserve",
        "messages": [{"role": "user", "content": "What was the code word?"}],
        "conversation_id": world.ids["conversation_id"],
        "max_tokens": 4,
    }


def _leaks(world: World, text: str, named: set[str]) -> list[str]:
    found = [MARKER] if MARKER in text else []
    return found + [v for k, v in world.ids.items() if v in text and v not in named]


def test_the_walk_covers_every_route() -> None:
    """Guards the walk itself: the OpenAPI schema lists nothing the route table lacks."""
    schema = create_app().openapi_schema.to_schema()
    walked = {path for _, path in _routes()}
    documented = {p for p in schema["paths"] if not p.startswith(PUBLIC_PREFIXES)}
    assert documented <= walked
    assert "/v1/conversations/{conversation_id}" in walked
    assert _ws_routes() == ["/v1/ws"]


@pytest.mark.parametrize("as_admin", [True, False], ids=["b-admin-jwt", "b-user-key"])
def test_every_route_with_a_tenant_a_id_is_404_and_leaks_nothing(
    world: World, as_admin: bool
) -> None:
    token = world.b_admin_jwt if as_admin else world.b_user_key
    problems: list[str] = []
    aimed_at_a = 0
    with _client(world.server, token) as client:
        for method, template in _routes():
            params = re.findall(r"\{(\w+)\}", template)
            unknown = [p for p in params if p not in world.ids and p not in GLOBAL_PARAMS]
            assert not unknown, f"{method} {template}: add an id for {unknown} to the walk"
            path = template
            for name in params:
                value = world.ids.get(name) or "ragserve"
                path = path.replace(f"{{{name}}}", value)
            body = BODIES.get((method, template))
            if (method, template) == ("POST", "/v1/chat/completions"):
                body = _chat_body(world)
            response = client.request(method, path, json=body)
            named = {world.ids[p] for p in params if p in world.ids}
            if body and "conversation_id" in body:
                named.add(body["conversation_id"])
            role_route = template.startswith(("/v1/admin", "/v1/labeling"))
            names_a = bool(named)
            aimed_at_a += names_a
            allowed = {404} if names_a else set(range(200, 500)) - {401}
            # A user meets the role guard first; an admin may not create tenants.
            creates_tenant = (method, template) == ("POST", "/v1/admin/tenants")
            if role_route and (not as_admin or creates_tenant):
                allowed = {403}
            if response.status_code not in allowed:
                problems.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            leaks = _leaks(world, response.text, named)
            if leaks:
                problems.append(f"{method} {path} leaked {leaks}: {response.text[:300]}")
    assert problems == []
    # Today: conversations 3, documents 2, feedback 1, report 1, chat completions 1,
    # admin 10, files 3, batches 2, labeling tasks 3.
    assert aimed_at_a >= 26, "the walk lost routes that name A's objects"
    walked = {template for _, template in _routes()}
    control_plane = {"/v1/admin/models", "/v1/admin/routing", "/v1/admin/tenants/{tenant_id}/usage"}
    assert control_plane <= walked


def test_inside_a_tenant_a_user_reaches_no_other_users_conversation(world: World) -> None:
    """Guards ownership route by route: A's second user aims at A's first user's turn."""
    ids = {**world.ids, **world.owned}
    problems: list[str] = []
    aimed = 0
    with _client(world.server, world.a_other_key) as client:
        for method, template in _routes():
            params = re.findall(r"\{(\w+)\}", template)
            path = template
            for name in params:
                path = path.replace(f"{{{name}}}", ids.get(name) or "ragserve")
            body = BODIES.get((method, template))
            if (method, template) == ("POST", "/v1/chat/completions"):
                body = {**_chat_body(world), "conversation_id": ids["conversation_id"]}
            response = client.request(method, path, json=body)
            names_owned = any(p in world.owned for p in params) or (
                body is not None and "conversation_id" in body
            )
            aimed += names_owned
            if template.startswith(("/v1/admin", "/v1/labeling")) or (
                template.startswith("/v1/documents") and method in ("POST", "DELETE")
            ):
                allowed = {403}
            elif names_owned:
                allowed = {404}
            else:
                allowed = set(range(200, 500)) - {401}
            if response.status_code not in allowed:
                problems.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            if PRIVATE in response.text:
                problems.append(f"{method} {path} leaked {PRIVATE}: {response.text[:300]}")
    assert problems == []
    # conversations 3 (read, delete, chat), feedback 1, report 1, chat completions 1.
    assert aimed >= 6, "the walk lost routes that name the owned conversation"
    with _client(world.server, world.a_owner_key) as owner:
        detail = owner.get(f"/v1/conversations/{ids['conversation_id']}").json()
        assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]


def test_websocket_turns_and_resumes_on_a_ids_fail(world: World) -> None:
    for path in _ws_routes():
        with connect(world.server.url.replace("http", "ws") + path) as socket:
            socket.send(
                json.dumps({"type": "connection_init", "payload": {"token": world.b_user_key}})
            )
            assert json.loads(socket.recv(timeout=30))["type"] == "connection_ack"
            socket.send(
                json.dumps(
                    {
                        "type": "chat",
                        "id": "t1",
                        "payload": {
                            "conversation_id": world.ids["conversation_id"],
                            "content": "hi",
                        },
                    }
                )
            )
            socket.send(
                json.dumps(
                    {
                        "type": "resume",
                        "id": "t2",
                        "payload": {"message_id": world.ids["message_id"], "after_index": 0},
                    }
                )
            )
            answers: dict[str, Any] = {}
            while len(answers) < 2:
                message = json.loads(socket.recv(timeout=60))
                if message["type"] == "error" or message["type"] == "done":
                    answers[message["id"]] = message
                assert MARKER not in json.dumps(message)
            assert answers["t1"]["type"] == "error"
            assert answers["t1"]["payload"]["code"] == "not_found"
            assert answers["t2"]["type"] == "error"


def test_a_is_untouched_after_the_walk(world: World) -> None:
    """Guards against writes that answered 404 but changed A's data anyway."""
    with _client(world.server, world.a_key) as a:
        ids = world.ids
        detail = a.get(f"/v1/conversations/{ids['conversation_id']}").json()
        assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
        assert a.get(f"/v1/documents/{ids['document_id']}").status_code == 200
        base = f"/v1/admin/tenants/{ids['tenant_id']}"
        assert a.get(f"{base}/users/{ids['user_id']}").json()["disabled"] is False
        assert a.get(f"{base}/keys/{ids['key_id']}").json()["revoked"] is False
        users = [u["subject"] for u in a.get(f"{base}/users").json()["items"]]
        assert users == [f"{MARKER}-user"]
        keys = a.get(f"{base}/keys").json()["items"]
        assert "intruder" not in {k["name"] for k in keys}
        tenants = [t["name"] for t in a.get("/v1/admin/tenants").json()["items"]]
        assert tenants == ["alpha"]
        task = a.get(f"/v1/labeling/tasks/{ids['task_id']}").json()["task"]
        assert (task["labels_done"], task["status"], task["lease_owner"]) == (0, "open", None)
        assert a.get("/v1/labeling/export").text == ""
