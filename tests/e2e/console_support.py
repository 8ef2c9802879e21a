"""Signing in to the console of a test server as a browser would, without one."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.e2e.server import Server

PASSWORD = "labeling is careful work"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def add_user(server: Server, tenant: str, username: str, role: str, *flags: str) -> None:
    """A console user made as an operator would: the password on standard input."""
    server.cli(
        "users",
        "create",
        "--tenant",
        tenant,
        "--username",
        username,
        "--role",
        role,
        *flags,
        stdin=PASSWORD + "\n",
    )


def sign_in(
    server: Server, tenant: str, username: str, password: str = PASSWORD
) -> tuple[httpx.Client, str]:
    """A client holding a console session, and the session's CSRF token."""
    client = httpx.Client(base_url=server.url, timeout=60)
    form = client.get("/admin/login")
    assert form.status_code == 200, form.text
    response = client.post(
        "/admin/login",
        data={
            "_csrf": csrf_of(form.text),
            "tenant": tenant,
            "username": username,
            "password": password,
            "next": "/admin/queue",
        },
    )
    assert response.status_code == 303, response.text
    queue = client.get("/admin/queue")
    assert queue.status_code == 200, queue.text
    return client, csrf_of(queue.text)


def answer_and_thumbs_down(client: httpx.Client, question: str, comment: str) -> dict[str, Any]:
    """A real answer of the server's model, rated down by its user (``client`` holds
    a chat key): the queue's raw material. Returns the answer message."""
    conversation = client.post("/v1/conversations", json={}).json()
    answer = client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": question, "options": {"max_tokens": 24}},
    ).json()["message"]
    rated = client.post(
        f"/v1/messages/{answer['id']}/feedback", json={"rating": -1, "comment": comment}
    )
    assert rated.status_code == 201, rated.text
    return dict(answer)
