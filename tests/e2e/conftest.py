"""Fixtures: one real server per session, two tenants with keys, an ingested document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DOCUMENT = """# The Zorblax reactor

The Zorblax reactor on Kepler station was built in 2087 by the engineer Mira Okafor.
It runs on frozen helium-3 pellets and produces 40 megawatts of power.

## Maintenance

The reactor is inspected every 90 days. Its coolant is liquid nitrogen, and the
inspection team is led by Tomas Brandt.
"""


@dataclass
class Deployment:
    server: Server
    key: str
    other_key: str
    document_id: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=120,
        )


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data_dir: Path = tmp_path_factory.mktemp("ragserve-e2e")
    server = Server(data_dir)
    server.cli("migrate")
    key = server.create_key("acme")
    other_key = server.create_key("globex")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            response = client.post(
                "/v1/documents",
                params={"wait": "true"},
                headers={"Authorization": f"Bearer {key}"},
                files={"file": ("zorblax.md", DOCUMENT.encode(), "text/markdown")},
            )
            assert response.status_code == 201, response.text
            assert response.json()["documents"][0]["document"]["status"] == "ready"
            document_id = response.json()["documents"][0]["document"]["id"]
        yield Deployment(server, key, other_key, document_id)
    finally:
        server.stop()
