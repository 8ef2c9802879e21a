"""The console's HTTP rules against a real server: sign-in, sessions, CSRF, roles,
headers, tenancy. (The labeler's work in a real browser: test_console_browser.py.)"""

from __future__ import annotations

import json
from contextlib import closing
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.console_support import PASSWORD, add_user, answer_and_thumbs_down, csrf_of, sign_in

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def people(deployment: Deployment) -> None:
    server = deployment.server
    add_user(server, "acme", "lena", "labeler")
    add_user(server, "acme", "adam", "admin")
    add_user(server, "globex", "gus", "labeler")


def test_pages_need_a_session_and_send_to_sign_in(deployment: Deployment, people: None) -> None:
    with httpx.Client(base_url=deployment.server.url) as anonymous:
        page = anonymous.get("/admin/queue?source=safety")
        assert page.status_code == 302
        assert page.headers["location"] == "/admin/login?next=%2Fadmin%2Fqueue%3Fsource%3Dsafety"
        # The console's own script gets a JSON 401 instead of a page.
        api = anonymous.get("/admin/queue", headers={"X-Requested-With": "console"})
        assert api.status_code == 401
        assert api.json()["error"]["code"] == "sign_in_required"
        # An API key is no console session.
        keyed = anonymous.get("/admin/queue", headers={"Authorization": f"Bearer {deployment.key}"})
        assert keyed.status_code == 302


def test_sign_in_sets_a_strict_session_cookie_and_a_bad_password_is_refused(
    deployment: Deployment, people: None
) -> None:
    with httpx.Client(base_url=deployment.server.url) as client:
        form = client.get("/admin/login")
        token = csrf_of(form.text)
        wrong = client.post(
            "/admin/login",
            data={"_csrf": token, "tenant": "acme", "username": "lena", "password": "guess"},
        )
        assert wrong.status_code == 401
        assert "Unknown tenant, username or password." in wrong.text
        assert "ragserve_console" not in wrong.cookies
        # Another site's form cannot sign a browser in: no login cookie, no sign-in.
        forged = httpx.post(
            f"{deployment.server.url}/admin/login",
            data={"_csrf": token, "tenant": "acme", "username": "lena", "password": PASSWORD},
        )
        assert forged.status_code == 403
        ok = client.post(
            "/admin/login",
            data={
                "_csrf": token,
                "tenant": "acme",
                "username": "lena",
                "password": PASSWORD,
                "next": "https://evil.example/phish",
            },
        )
        assert ok.status_code == 303
        # Never sent away from the console, whatever ``next`` says.
        assert ok.headers["location"] == "/admin/queue"
        cookie = ok.headers["set-cookie"]
        assert "ragserve_console=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/admin" in cookie


def test_every_page_carries_a_strict_content_security_policy(
    deployment: Deployment, people: None
) -> None:
    client, _ = sign_in(deployment.server, "acme", "lena")
    with closing(client):
        for path in ("/admin/login", "/admin/queue", "/admin/export", "/admin/nowhere"):
            response = client.get(path)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp, path
            assert "'unsafe-inline'" not in csp
            assert "frame-ancestors 'none'" in csp
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "<script>" not in response.text  # no inline script anywhere
        script = client.get("/admin/static/console.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]


def test_a_form_without_the_csrf_token_is_refused(deployment: Deployment, people: None) -> None:
    client, token = sign_in(deployment.server, "acme", "lena")
    with closing(client):
        assert client.post("/admin/tasks/next", data={}).status_code == 403
        stale = client.post("/admin/tasks/next", data={"_csrf": "x" * 43})
        assert stale.status_code == 403
        assert "security token" in stale.text
        # The console's script sends it as a header instead.
        assert client.post("/admin/tasks/next", data={"_csrf": token}).status_code == 303


def test_a_cookie_stops_working_after_sign_out(deployment: Deployment, people: None) -> None:
    client, token = sign_in(deployment.server, "acme", "lena")
    stolen = client.cookies["ragserve_console"]
    with closing(client):
        assert client.post("/admin/logout", data={"_csrf": token}).status_code == 303
    with httpx.Client(base_url=deployment.server.url) as thief:
        thief.cookies.set("ragserve_console", stolen, path="/admin")
        assert thief.get("/admin/queue").status_code == 302


def test_a_labeler_cannot_reach_the_admin_pages(deployment: Deployment, people: None) -> None:
    client, token = sign_in(deployment.server, "acme", "lena")
    with closing(client):
        for path in ("/admin/tenant", "/admin/metrics", "/admin/safety", "/admin/models"):
            assert client.get(path).status_code == 403, path
        refused = client.post(
            "/admin/tenant/keys", data={"_csrf": token, "name": "sneaky", "scope": "chat"}
        )
        assert refused.status_code == 403
    admin, _ = sign_in(deployment.server, "acme", "adam")
    with closing(admin):
        assert admin.get("/admin/tenant").status_code == 200
        assert "sneaky" not in admin.get("/admin/tenant").text
        # A tenant's admin is no platform admin: the shared registry is not theirs.
        assert admin.get("/admin/models").status_code == 403


def test_another_tenants_task_is_not_found(deployment: Deployment, people: None) -> None:
    with deployment.client() as api:
        answer_and_thumbs_down(api, "Who built the Zorblax reactor?", "wrong person")
    acme, token = sign_in(deployment.server, "acme", "lena")
    with closing(acme):
        claimed = acme.post("/admin/tasks/next", data={"_csrf": token})
        assert claimed.status_code == 303
        task_path = claimed.headers["location"].split("?")[0]
        assert task_path.startswith("/admin/tasks/")
        assert acme.get(task_path).status_code == 200
    globex, token = sign_in(deployment.server, "globex", "gus")
    with closing(globex):
        assert globex.get(task_path).status_code == 404
        posted = globex.post(f"{task_path}/labels", data={"_csrf": token, "category": "good"})
        assert posted.status_code == 404
        assert globex.post(f"{task_path}/skip", data={"_csrf": token}).status_code == 404


def test_bad_label_input_is_a_clear_error(deployment: Deployment, people: None) -> None:
    with deployment.client() as api:
        answer_and_thumbs_down(api, "What is the coolant of the reactor?", "incomplete")
    client, token = sign_in(deployment.server, "acme", "adam")
    with closing(client):
        claimed = client.post("/admin/tasks/next", data={"_csrf": token})
        task_path = claimed.headers["location"].split("?")[0]
        for data in (
            {"category": "nonsense"},
            {},
            {"category": "good", "rating_1": "7"},
            {"category": "good", "note": "n" * 5000},
        ):
            refused = client.post(f"{task_path}/labels", data={"_csrf": token, **data})
            assert refused.status_code in (400, 422), (data, refused.status_code)
        # Nothing was stored: the task still waits for its label.
        page = client.get(task_path)
        assert "Labels so far" not in page.text
        assert (
            client.post(
                f"{task_path}/labels", data={"_csrf": token, "category": "good", "then": "queue"}
            ).status_code
            == 303
        )


def test_an_admin_sets_the_tenants_own_safety_policy(deployment: Deployment, people: None) -> None:
    admin, token = sign_in(deployment.server, "acme", "adam")
    with closing(admin):
        page = admin.get("/admin/safety")
        assert page.status_code == 200
        assert "runs the default policy" in page.text
        bad = admin.post("/admin/safety", data={"_csrf": token, "policy": '{"actions": {"pii": 7'})
        assert bad.status_code == 422
        assert "not valid JSON" in bad.text
        assert "runs the default policy" in bad.text  # nothing was stored
        policy = json.dumps({"retrieval_action": "flag", "actions": {"pii": "flag"}})
        saved = admin.post("/admin/safety", data={"_csrf": token, "policy": policy})
        assert saved.status_code == 303
        page = admin.get("/admin/safety")
        assert "runs its own policy" in page.text
        assert "&#34;retrieval_action&#34;: &#34;flag&#34;" in page.text
    # Another tenant's policy is its own.
    other, _ = sign_in(deployment.server, "globex", "gus")
    with closing(other):
        assert other.get("/admin/safety").status_code == 403
    admin, token = sign_in(deployment.server, "acme", "adam")
    with closing(admin):
        reset = admin.post("/admin/safety/reset", data={"_csrf": token})
        assert reset.status_code == 303
        assert "runs the default policy" in admin.get("/admin/safety").text


def test_the_page_keeps_its_lease_and_nobody_else_takes_the_task(
    deployment: Deployment, people: None
) -> None:
    with deployment.client() as api:
        answer_and_thumbs_down(api, "How often is the reactor inspected?", "too vague")
    lena, lena_token = sign_in(deployment.server, "acme", "lena")
    adam, adam_token = sign_in(deployment.server, "acme", "adam")
    with closing(lena), closing(adam):
        claimed = lena.post("/admin/tasks/next", data={"_csrf": lena_token})
        task_path = claimed.headers["location"].split("?")[0]
        script = {"X-Requested-With": "console", "Accept": "application/json"}
        # The page's script renews with the token in a header, as JSON.
        renewed = lena.post(f"{task_path}/lease", headers={**script, "X-CSRF-Token": lena_token})
        assert renewed.status_code == 200
        assert renewed.json()["lease_until"]
        assert lena.post(f"{task_path}/lease", headers=script).status_code == 403
        # Another labeler opening the task sees it taken, and cannot renew or label it.
        page = adam.get(task_path)
        assert "Another labeler holds this task" in page.text
        assert 'id="label-form"' not in page.text
        stolen = adam.post(f"{task_path}/lease", headers={**script, "X-CSRF-Token": adam_token})
        assert stolen.status_code == 409
        assert stolen.json()["error"]["code"] == "lease_lost"
        # Next task never hands adam the task lena holds.
        for _ in range(5):
            nxt = adam.post("/admin/tasks/next", data={"_csrf": adam_token})
            assert nxt.headers["location"].split("?")[0] != task_path
            if "/admin/tasks/" not in nxt.headers["location"]:
                break
            adam.post(f"{nxt.headers['location'].split('?')[0]}/skip", data={"_csrf": adam_token})
