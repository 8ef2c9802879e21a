"""Two ``ragserve serve`` processes sharing one PostgreSQL and one Redis enforce one budget."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.server import Server, shared_nodes

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BURST = 5

ENV = {"RAGSERVE_SAFETY_ENABLED": "false", "RAGSERVE_LOG_LEVEL": "info"}


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[list[Server]]:
    with shared_nodes(tmp_path_factory, postgres_url, redis_url, ENV) as nodes:
        yield nodes


def test_two_processes_share_one_budget_per_key(servers: list[Server]) -> None:
    # The key's own limit (stored with it, so both processes see it); the refill is
    # slow enough that no unit comes back while the test runs.
    created = servers[0].cli(
        "keys", "create", "--tenant", "acme", "--rate-limit-burst", str(BURST),
        "--rate-limit-rate", "0.02",
    )  # fmt: skip
    key = created.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}
    answers: list[tuple[int, httpx.Response]] = []
    with httpx.Client(timeout=30) as client:
        for i in range(4 * BURST):
            node = i % 2
            answers.append(
                (node, client.get(f"{servers[node].url}/v1/conversations", headers=auth))
            )
        accepted = [node for node, r in answers if r.status_code == 200]
        refused = [(node, r) for node, r in answers if r.status_code == 429]
        assert len(accepted) == BURST
        assert len(refused) == 3 * BURST
        # Both processes served part of the one budget, and both refused past it.
        assert set(accepted) == {0, 1}
        assert {node for node, _ in refused} == {0, 1}
        for _, response in refused:
            assert response.json()["error"]["code"] == "rate_limited"
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["ratelimit-remaining"] == "0"
        # Another key of the same tenant has its own (default) budget.
        other = servers[1].create_key("acme")
        response = client.get(
            f"{servers[1].url}/v1/conversations", headers={"Authorization": f"Bearer {other}"}
        )
        assert response.status_code == 200, response.text
        for node in servers:
            metrics = client.get(f"{node.url}/metrics").text
            assert 'ragserve:rate_limit_rejections_total{scope="key"}' in metrics


def test_a_served_process_logs_json_access_lines_without_the_key(servers: list[Server]) -> None:
    key = servers[0].create_key("logs")
    with httpx.Client(timeout=30) as client:
        answer = client.get(
            f"{servers[0].url}/v1/conversations?api_key={key}",
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 200, answer.text
    # The access line is written once the response is sent: the client may read the
    # answer before the server wrote it.
    deadline = time.monotonic() + 10
    while True:
        log = servers[0].log_path.read_text()
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("event") == "http_request"]
        mine = [line for line in access if line["request_id"] == answer.headers["x-request-id"]]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert key not in log
    assert len(mine) == 1
    assert mine[0]["route"] == "/v1/conversations"
    assert mine[0]["status"] == 200
