"""Conversations, documents, search and errors over REST, against a real server."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e


def test_conversations_paginate_without_gaps_or_duplicates(deployment: Deployment) -> None:
    with deployment.client(deployment.server.create_key("pager")) as client:
        created = [
            client.post("/v1/conversations", json={"title": f"c{i}"}).json()["id"] for i in range(5)
        ]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/conversations", params=params).json()
            seen += [c["id"] for c in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(created)
        assert len(seen) == len(set(seen))
        assert client.delete(f"/v1/conversations/{created[0]}").status_code == 204
        assert client.get(f"/v1/conversations/{created[0]}").status_code == 404
        bad = client.get("/v1/conversations", params={"cursor": "garbage"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_request"


def _wait_until_settled(client: httpx.Client, document_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        document: dict[str, Any] = client.get(f"/v1/documents/{document_id}").json()
        if document["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return document
        time.sleep(0.1)


def test_documents_replace_unchanged_delete_and_search(deployment: Deployment) -> None:
    with deployment.client(deployment.server.create_key("librarian")) as client:
        first = client.post(
            "/v1/documents",
            json={
                "name": "plants.txt",
                "content": "Ferns grow in the shade of the old oak forest.",
            },
        )
        assert first.status_code == 202, first.text
        doc = first.json()["documents"][0]
        assert doc["outcome"] == "created"
        assert doc["document"]["status"] in ("queued", "indexing", "ready")
        ready = _wait_until_settled(client, doc["document"]["id"])
        assert ready["status"] == "ready", ready
        assert ready["chunk_count"] == 1
        again = client.post(
            "/v1/documents",
            params={"wait": "true"},
            json={
                "name": "plants.txt",
                "content": "Ferns grow in the shade of the old oak forest.",
            },
        )
        assert again.status_code == 200, again.text
        assert again.json()["documents"][0]["outcome"] == "unchanged"
        assert again.json()["documents"][0]["document"]["id"] == doc["document"]["id"]
        changed = client.post(
            "/v1/documents",
            params={"wait": "true"},
            json={"name": "plants.txt", "content": "Cacti store water and thrive in hot deserts."},
        )
        assert changed.status_code == 201, changed.text
        assert changed.json()["documents"][0]["outcome"] == "replaced"
        assert changed.json()["documents"][0]["document"]["status"] == "ready"
        hits = client.post("/v1/search", json={"query": "Where do ferns grow?", "k": 5}).json()[
            "results"
        ]
        assert all("Ferns" not in h["text"] for h in hits)
        hits = client.post("/v1/search", json={"query": "Which plants store water?"}).json()[
            "results"
        ]
        assert hits[0]["document_id"] == doc["document"]["id"]
        assert hits == sorted(hits, key=lambda h: -h["score"])
        assert client.delete(f"/v1/documents/{doc['document']['id']}").status_code == 204
        assert (
            client.post("/v1/search", json={"query": "Which plants store water?"}).json()["results"]
            == []
        )
        assert client.get(f"/v1/documents/{doc['document']['id']}").status_code == 404


def test_html_uploads_are_read_without_their_scripts(deployment: Deployment) -> None:
    html = (
        b"<html><body><script>alert(1)</script><h1>Otters</h1>"
        b"<p>Otters hold hands while sleeping.</p></body></html>"
    )
    with deployment.client(deployment.server.create_key("formats")) as client:
        response = client.post(
            "/v1/documents",
            params={"wait": "true"},
            files=[("file", ("otters.html", html, "text/html"))],
            data={"collection": "animals"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["documents"][0]["document"]["collection"] == "animals"
        hits = client.post(
            "/v1/search", json={"query": "How do otters sleep?", "collection": "animals"}
        ).json()
        assert "hold hands" in hits["results"][0]["text"]
        assert "alert" not in hits["results"][0]["text"]
        unsupported = client.post(
            "/v1/documents", files={"file": ("x.exe", b"MZ\x00\x01", "application/x-msdownload")}
        )
        assert unsupported.status_code == 415
        assert unsupported.json()["error"]["code"] == "unsupported_media_type"


def test_a_broken_file_ends_failed_with_the_reason_and_bad_batches_store_nothing(
    deployment: Deployment,
) -> None:
    """Guards the asynchronous contract: cheap checks answer at once, parsing fails later."""
    with deployment.client(deployment.server.create_key("sloppy")) as client:
        queued = client.post(
            "/v1/documents",
            files={"file": ("scan.pdf", b"%PDF-1.7 this is no PDF body", "application/pdf")},
        )
        assert queued.status_code == 202, queued.text
        document = _wait_until_settled(client, queued.json()["documents"][0]["document"]["id"])
        assert document["status"] == "failed"
        assert "scan.pdf" in document["error"]
        assert document["chunk_count"] == 0
        # One bad file in a batch: 422 at once, and the good one is not stored either.
        batch = client.post(
            "/v1/documents",
            files=[
                ("file", ("good.txt", b"Owls hunt at night.", "text/plain")),
                ("file", ("bad.txt", b"MZ\x00\x01binary", "text/plain")),
            ],
        )
        assert batch.status_code == 422, batch.text
        assert batch.json()["error"]["code"] == "invalid_request"
        assert "binary" in batch.json()["error"]["message"]
        names = [d["name"] for d in client.get("/v1/documents").json()["data"]]
        assert names == ["scan.pdf"]


def test_other_tenants_objects_are_404(deployment: Deployment) -> None:
    with deployment.client() as owner:
        conversation = owner.post("/v1/conversations", json={}).json()
    with deployment.client(deployment.other_key) as other:
        assert other.get(f"/v1/conversations/{conversation['id']}").status_code == 404
        assert other.delete(f"/v1/conversations/{conversation['id']}").status_code == 404
        assert other.get(f"/v1/documents/{deployment.document_id}").status_code == 404
        assert other.delete(f"/v1/documents/{deployment.document_id}").status_code == 404
        response = other.post(
            f"/v1/conversations/{conversation['id']}/messages", json={"content": "hi"}
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        hits = other.post("/v1/search", json={"query": "Zorblax reactor"}).json()["results"]
        assert all(h["document_id"] != deployment.document_id for h in hits)
    with deployment.client() as owner:
        assert owner.get(f"/v1/conversations/{conversation['id']}").json()["messages"] == []


def test_bad_requests_get_clear_errors_and_change_nothing(deployment: Deployment) -> None:
    with deployment.client(deployment.server.create_key("careless")) as client:
        conversation = client.post("/v1/conversations", json={}).json()
        url = f"/v1/conversations/{conversation['id']}/messages"
        cases = [
            (
                client.post(
                    url, content=b"{not json", headers={"content-type": "application/json"}
                ),
                400,
            ),
            (client.post(url, json={"content": "hi", "surprise": True}), 400),
            (client.post(url, json={"content": ""}), 400),
            (client.post(url, json={"content": " \n\u3000"}), 400),
            (client.get(f"/v1/conversations/{conversation['id']}", params={"limit": 201}), 400),
            (client.get(f"/v1/conversations/{conversation['id']}", params={"cursor": "x"}), 400),
            (client.post(url, json={"content": "x" * 9000}), 422),
            (client.post(url, json={"content": "hi", "options": {"max_tokens": 100000}}), 422),
            (
                client.post(
                    url,
                    content=b"x" * (3 * 1024 * 1024),
                    headers={"content-type": "application/json"},
                ),
                413,
            ),
            (client.post("/v1/documents", json={"name": "a.txt"}), 400),
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            body = response.json()
            assert set(body) == {"error"}
            assert set(body["error"]) == {"code", "message"}
            assert body["error"]["message"]
        read = client.get(f"/v1/conversations/{conversation['id']}").json()
        assert (read["messages"], read["next_cursor"]) == ([], None)
        assert client.get("/v1/documents").json()["data"] == []
    unauthenticated = deployment.client("rsk_not_a_key")
    with unauthenticated:
        response = unauthenticated.get("/v1/conversations")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_health_and_readiness(deployment: Deployment) -> None:
    with deployment.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"
        assert set(ready["checks"]) == {"database", "vector_store", "engine", "generation_backends"}


def test_metrics_are_exported_in_prometheus_format(deployment: Deployment) -> None:
    with deployment.client() as client:
        client.get("/v1/conversations/not-a-real-id")
        conversation = client.post("/v1/conversations", json={}).json()
        client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            json={"content": "Hi", "options": {"max_tokens": 2}},
        )
        body = client.get("/metrics", headers={"Authorization": ""}).text
    assert 'ragserve:errors_total{code="not_found"}' in body
    assert "ragserve:http_request_duration_seconds_bucket" in body
    assert 'route="/v1/conversations/{conversation_id}"' in body
    assert 'stage="retrieve",version="' in body
    assert 'ragserve:turns_total{finish_reason="length",model="' in body


def test_a_failed_document_shows_a_code_and_a_safe_message_and_quotas_are_409(
    deployment: Deployment,
) -> None:
    """Guards two things a client sees of ingestion: a failed document carries an
    ``error_code`` and a sentence without a parser's internals (those are logged),
    and a tenant's quota (set with ``ragserve tenants quota``) refuses the upload past
    it with 409 ``quota_exceeded``, storing nothing of it."""
    key = deployment.server.create_key("quota-co")
    deployment.server.cli("tenants", "quota", "quota-co", "--max-documents", "1")
    with deployment.client(key) as client:
        queued = client.post(
            "/v1/documents",
            files={"file": ("scan.pdf", b"%PDF-1.7 no body at all", "application/pdf")},
        )
        assert queued.status_code == 202, queued.text
        document = _wait_until_settled(client, queued.json()["documents"][0]["document"]["id"])
        assert (document["status"], document["error_code"]) == ("failed", "invalid_document")
        assert document["error"] == "'scan.pdf' is not a readable PDF"
        refused = client.post(
            "/v1/documents", files={"file": ("more.txt", b"Owls hunt at night.", "text/plain")}
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert [d["name"] for d in client.get("/v1/documents").json()["data"]] == ["scan.pdf"]
