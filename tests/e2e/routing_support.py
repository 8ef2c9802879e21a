"""A routed deployment for end-to-end tests: one API node over real inference nodes.

The API node (``ragserve serve`` with ``RAGSERVE_GENERATION_BACKEND_URLS``) loads no
model; every turn goes through its router to ``ragserve inference`` processes. Which
node answered a turn is read from the API node's own counters
(``ragserve:router_requests_total`` by endpoint), never guessed.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server
from tests.support.inference_node import InferenceNode

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

NODE_ENV = {
    # Two cores: one thread per node leaves room for the API node and the client.
    "RAGSERVE_GENERATION_THREADS": "1",
    "RAGSERVE_GENERATION_MAX_TOKENS": "16",
}
ROUTING_ENV = {
    "RAGSERVE_ROUTING_PROBE_INTERVAL_S": "1",
    "RAGSERVE_ROUTING_COOLDOWN_S": "1",
    "RAGSERVE_ROUTING_REFRESH_S": "1",
    "RAGSERVE_SAFETY_ENABLED": "false",
    "RAGSERVE_RATE_LIMIT_ENABLED": "false",
}
SHORT = {"retrieval_k": 0, "max_tokens": 2}
"""Options of a turn whose answer does not matter, only where it ran."""


def start_all(nodes: Iterable[InferenceNode]) -> None:
    """Start inference nodes side by side (each loads the model for about 10 s)."""
    nodes = list(nodes)
    with ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(node.start) for node in nodes]:
            future.result()


def metric_samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` on ``url``'s ``/metrics``, with its labels."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; that value. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(every)


@dataclass
class Cluster:
    """The API node, its inference nodes, a chat key and a platform admin key."""

    api: Server
    nodes: list[InferenceNode]
    key: str
    admin_key: str

    def client(self, key: str | None = None, timeout: float = 120) -> httpx.Client:
        return httpx.Client(
            base_url=self.api.url,
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=timeout,
        )

    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def node_at(self, endpoint: str) -> InferenceNode:
        return next(n for n in self.nodes if n.url == endpoint)

    def attempts(self, outcome: str | None = "ok", version: str | None = None) -> Counter[str]:
        """Router attempts by endpoint URL (of one outcome and version; ``None``: any)."""
        counts: Counter[str] = Counter()
        for labels, value in metric_samples(self.api.url, "ragserve:router_requests_total"):
            if outcome is not None and labels["outcome"] != outcome:
                continue
            if version is not None and labels["version"] != version:
                continue
            counts[labels["endpoint"]] += int(value)
        return counts

    def retries(self) -> float:
        return sum(v for _, v in metric_samples(self.api.url, "ragserve:router_retries_total"))

    def routing(self) -> dict[str, dict[str, Any]]:
        """``GET /v1/admin/routing`` of the default model, by endpoint URL."""
        with self.admin() as admin:
            response = admin.get("/v1/admin/routing")
        assert response.status_code == 200, response.text
        return {
            e["url"]: e
            for e in response.json()["endpoints"]
            if e["version"] == "smollm2-135m-instruct@default"
        }

    def wait_healthy(self, timeout: float = 15.0) -> None:
        """Until the router takes every node as healthy again."""
        wait_until(
            lambda: all(e["healthy"] for e in self.routing().values()),
            timeout,
            f"every node healthy: {self.routing()}",
        )

    def outstanding(self) -> Counter[str]:
        """Requests the router has running now, by endpoint URL."""
        counts: Counter[str] = Counter()
        for labels, value in metric_samples(self.api.url, "ragserve:router_requests_outstanding"):
            counts[labels["endpoint"]] += int(value)
        return +counts

    def running(self, node: InferenceNode) -> float:
        """Sequences the node's engine is decoding, as of its last step.

        NOTE: the engine sets this gauge at the start of a step, so after a request
        ends normally it may read 1 until the next request; a cancel is dropped
        before the gauge is set, so after one it reads the truth.
        """
        return node.metric("ragserve:num_requests_running")

    def new_conversation(self, client: httpx.Client) -> str:
        response = client.post("/v1/conversations", json={})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def turn(
        self,
        client: httpx.Client,
        conversation: str,
        content: str = "What is a bee?",
        **body: Any,
    ) -> dict[str, Any]:
        """One REST turn; the stored assistant message."""
        response = client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": content, "options": SHORT, **body},
        )
        assert response.status_code == 200, response.text
        message: dict[str, Any] = response.json()["message"]
        assert message["status"] == "complete", message
        return message

    def served_turn(self, client: httpx.Client, conversation: str) -> str:
        """Run one turn alone and return the URL of the node that answered it."""
        before = self.attempts()
        self.turn(client, conversation)
        delta = self.attempts() - before
        assert sum(delta.values()) == 1, f"one turn, one attempt: {delta}"
        return next(iter(delta))
