"""Tenant isolation in the console, route by route: globex's console admin aims
every ``/admin`` route at acme's objects and gets 404s, and nothing of acme's.

Like the API's walk (test_tenant_isolation.py), the routes come from the app's own
route table, so a console route added later is walked without touching this file;
a path parameter this walk does not know fails the test until it is added here.
"""

from __future__ import annotations

import re
from contextlib import closing
from typing import TYPE_CHECKING

import pytest
from litestar.routes import HTTPRoute

from app.server.factory import create_app
from tests.e2e.console_support import add_user, answer_and_thumbs_down, sign_in

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e

# Path parameters that name no tenant's object, and a value each.
NEUTRAL = {"rest": "nowhere", "file_path": "console.css", "name": "ragserve", "action": "disable"}
PLATFORM = ("/admin/models", "/admin/tenants", "/admin/metrics")
"""Pages of the platform admin alone (a tenant's admin gets 403)."""


def _console_routes() -> list[tuple[str, str]]:
    found = []
    for route in create_app().routes:
        if isinstance(route, HTTPRoute) and route.path.startswith("/admin"):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            found += [(m, path) for m in sorted(route.methods) if m not in ("OPTIONS", "HEAD")]
    return found


def test_globex_reaches_no_acme_object_through_the_console(deployment: Deployment) -> None:
    server = deployment.server
    add_user(server, "acme", "alma", "admin")
    add_user(server, "acme", "alvin", "labeler")
    add_user(server, "globex", "gert", "admin")
    with deployment.client() as api:
        answer = answer_and_thumbs_down(api, "When was the reactor built?", "ACMESECRET wrong")
    acme, token = sign_in(server, "acme", "alma")
    with closing(acme):
        claimed = acme.post("/admin/tasks/next", data={"_csrf": token})
        task_id = claimed.headers["location"].split("?")[0].rsplit("/", 1)[-1]
        tenant_page = acme.get("/admin/tenant").text
        key_id = re.findall(r"/admin/tenant/keys/([0-9a-f-]{36})/revoke", tenant_page)[0]
        user_id = re.findall(r"/admin/tenant/users/([0-9a-f-]{36})/disable", tenant_page)[0]
    ids = {"task_id": task_id, "key_id": key_id, "user_id": user_id}

    problems: list[str] = []
    aimed = 0
    globex, token = sign_in(server, "globex", "gert")
    with closing(globex):
        for method, template in _console_routes():
            if template == "/admin/logout":
                continue  # ends the walker's session; tests/e2e/test_console.py covers it
            params = re.findall(r"\{(\w+)\}", template)
            unknown = [p for p in params if p not in ids and p not in NEUTRAL]
            assert not unknown, f"{method} {template}: add a value for {unknown} to the walk"
            path = template
            for name in params:
                path = path.replace(f"{{{name}}}", ids.get(name) or NEUTRAL[name])
            data = {"_csrf": token, "category": "good", "name": "x", "role": "user"}
            response = globex.request(
                method, path, data=data if method == "POST" else None, follow_redirects=False
            )
            names_acme = any(p in ids for p in params)
            aimed += names_acme
            if path.startswith(PLATFORM):
                allowed = {403}
            elif names_acme or template == "/admin/{rest}":
                allowed = {404}
            else:
                allowed = set(range(200, 500)) - {401}
            if response.status_code not in allowed:
                problems.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            text = response.text
            leaked = [v for v in (*ids.values(), answer["id"], "ACMESECRET") if v in text]
            leaked = [v for v in leaked if v not in path]
            if leaked:
                problems.append(f"{method} {path} leaked {leaked}")
    assert problems == []
    # task page, lease, labels, skip; key revoke; user enable/disable.
    assert aimed >= 6, "the walk lost console routes that name acme's objects"

    # Nothing of acme's changed: its task is still leased to alma, its key and user live.
    acme, token = sign_in(server, "acme", "alma")
    with closing(acme):
        page = acme.get(f"/admin/tasks/{task_id}").text
        assert "Leased to you" in page
        assert "Labels so far" not in page
        tenant_page = acme.get("/admin/tenant").text
        assert f"/admin/tenant/keys/{key_id}/revoke" in tenant_page
        assert f"/admin/tenant/users/{user_id}/disable" in tenant_page
