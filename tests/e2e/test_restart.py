"""Conversations survive a restart of the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e


def test_conversation_and_messages_survive_a_restart(deployment: Deployment) -> None:
    with deployment.client() as client:
        conversation = client.post("/v1/conversations", json={"title": "durable"}).json()
        answer = client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "What does the reactor produce?", "options": {"max_tokens": 12}},
        ).json()["message"]
        before = client.get(f"/v1/conversations/{conversation['id']}").json()
    deployment.server.restart()
    with deployment.client() as client:
        after = client.get(f"/v1/conversations/{conversation['id']}").json()
        assert after == before
        assert after["messages"][-1]["id"] == answer["id"]
        hits = client.post("/v1/search", json={"query": "Zorblax reactor"}).json()["results"]
        assert hits[0]["document_id"] == deployment.document_id
