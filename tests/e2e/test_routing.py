"""The serving control plane with real processes: one API node routing every turn to
two ``ragserve inference`` nodes (balancing, affinity, failover, probes, canary,
shadow, cancel, overload), checked by what clients see and what the nodes count.

The nodes are killed with SIGKILL and restarted on the same port; every test leaves
both nodes up and healthy for the next.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from app.chat.events import GENERATION_FAILED
from tests.e2e.routing_support import (
    NODE_ENV,
    ROUTING_ENV,
    Cluster,
    metric_samples,
    start_all,
    wait_until,
)
from tests.e2e.server import Server
from tests.e2e.ws_client import connect, send, until_end
from tests.support.inference_node import InferenceNode

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import httpx

pytestmark = pytest.mark.e2e

DEFAULT_MODEL = "smollm2-135m-instruct"
MODEL = "routing-e2e"
"""A registry model with version v1 on node a and v2 on node b."""
LONG = {
    "content": "Write a long story about a lighthouse keeper and her cat.",
    "options": {"max_tokens": 400, "temperature": 0.8, "seed": 3, "retrieval_k": 0},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("routing-e2e")
    nodes = []
    for name in ("a", "b"):
        (root / name).mkdir()
        nodes.append(InferenceNode(root / name, NODE_ENV))
    (root / "api").mkdir()
    urls = ",".join(n.url for n in nodes)
    api = Server(root / "api", {"RAGSERVE_GENERATION_BACKEND_URLS": urls, **ROUTING_ENV})
    try:
        with ThreadPoolExecutor(1) as pool:
            started = pool.submit(start_all, nodes)
            api.cli("migrate")
            key = api.create_key("acme")
            admin_key = api.cli(
                "keys", "create", "--tenant", "ops", "--role", "admin",
                "--scope", "chat", "--scope", "platform:admin",
            ).strip().splitlines()[-1]  # fmt: skip
            started.result()
        api.start()
        deployment = Cluster(api, nodes, key, admin_key)
        deployment.wait_healthy()
        yield deployment
    finally:
        api.stop()
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def registered(cluster: Cluster) -> Iterator[None]:
    """``routing-e2e`` in the registry: v1 served by node a, v2 by node b."""
    a, b = cluster.nodes
    with cluster.admin() as admin:
        assert admin.post("/v1/admin/models", json={"name": MODEL}).status_code == 201
        for version, node in (("v1", a), ("v2", b)):
            created = admin.post(
                f"/v1/admin/models/{MODEL}/versions",
                json={"version": version, "backend": "remote", "endpoints": [{"url": node.url}]},
            )
            assert created.status_code == 201, created.text
        yield
        admin.delete(f"/v1/admin/models/{MODEL}")


def _rollout(cluster: Cluster, **rollout: Any) -> dict[str, Any]:
    with cluster.admin() as admin:
        response = admin.put(f"/v1/admin/models/{MODEL}/rollout", json=rollout)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["rollout"]
    return result


def _serving_node(cluster: Cluster) -> InferenceNode:
    """The one node the router has a request running on now."""
    busy = wait_until(cluster.outstanding, 10, "a request in flight")
    assert list(busy.values()) == [1], f"one stream runs on one node: {busy}"
    return cluster.node_at(next(iter(busy)))


def test_concurrent_conversations_are_spread_over_both_nodes(cluster: Cluster) -> None:
    """Guards balancing: 16 new conversations at once are served by both nodes (their
    random ids spread them by affinity, and least outstanding caps any node's excess),
    the router's counts match what each node itself served, and nothing stays
    outstanding."""
    before = cluster.attempts()
    done_before = {
        n.url: n.metric("ragserve:e2e_request_latency_seconds_count") for n in cluster.nodes
    }

    def conversation(_: int) -> None:
        with cluster.client() as client:
            conversation_id = cluster.new_conversation(client)
            cluster.turn(client, conversation_id, options={"retrieval_k": 0, "max_tokens": 8})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(conversation, range(16)))
    served = cluster.attempts() - before
    assert sum(served.values()) == 16
    assert set(served) == {n.url for n in cluster.nodes}, f"one node served all: {served}"
    for node in cluster.nodes:
        done = node.metric("ragserve:e2e_request_latency_seconds_count") - done_before[node.url]
        assert done == served[node.url], "the router's count is what the node served"
    outstanding = metric_samples(cluster.api.url, "ragserve:router_requests_outstanding")
    assert outstanding
    assert all(value == 0 for _, value in outstanding)


def test_each_conversation_stays_on_one_node_and_conversations_use_both(cluster: Cluster) -> None:
    """Guards conversation affinity: every later turn of a conversation reaches the node
    that answered its first (where its prefix cache is), while the other node idles;
    and different conversations do not all map to one node."""
    homes: dict[str, list[str]] = {n.url: [] for n in cluster.nodes}
    with cluster.client() as client:
        for _ in range(24):
            if all(len(found) >= 3 for found in homes.values()):
                break
            conversation_id = cluster.new_conversation(client)
            homes[cluster.served_turn(client, conversation_id)].append(conversation_id)
        assert all(len(found) >= 3 for found in homes.values()), f"one-sided: {homes}"
        for home, conversations in homes.items():
            for conversation_id in conversations[:3]:
                for _ in range(2):
                    assert cluster.served_turn(client, conversation_id) == home


def test_a_node_killed_mid_stream_ends_the_stream_cleanly_and_the_turn_is_stored_failed(
    cluster: Cluster,
) -> None:
    """Guards failing after the first token: when the node streaming an answer dies
    (SIGKILL), the OpenAI stream ends at once with an OpenAI error event and
    ``[DONE]`` (no hang, no HTML 500), and the turn is stored ``failed`` with exactly
    the text the client received."""
    body = {
        "model": DEFAULT_MODEL,
        "messages": [{"role": "user", "content": LONG["content"]}],
        "max_tokens": 400,
        "temperature": 0.8,
        "seed": 3,
        "stream": True,
        "retrieval": {"enabled": False},
    }
    deltas: list[str] = []
    errors: list[dict[str, Any]] = []
    conversation_id = ""
    victim: InferenceNode | None = None
    finished = False
    try:
        with (
            cluster.client(timeout=30) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    finished = True
                    break
                event = json.loads(data)
                if "error" in event:
                    errors.append(event["error"])
                    continue
                conversation_id = conversation_id or event["conversation_id"]
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    deltas.append(event["choices"][0]["delta"]["content"])
                if victim is None and len(deltas) >= 3:
                    victim = _serving_node(cluster)
                    victim.kill()
        assert victim is not None, "the answer ended before the node could be killed"
        assert finished, "the stream ends with [DONE]"
        assert len(errors) == 1, errors
        assert errors[0]["message"], errors
        assert errors[0]["type"], errors
        with cluster.client() as client:
            stored = client.get(f"/v1/conversations/{conversation_id}").json()["messages"][-1]
        assert stored["status"] == "failed", stored
        assert stored["finish_reason"] == "error"
        assert stored["content"] == "".join(deltas) != ""
        # The engine's own error (the lost node's address) is logged, never shown.
        assert errors[0]["code"] == "generation_failed", errors
        assert stored["error"] == errors[0]["message"] == GENERATION_FAILED
        assert stored["error_code"] == "generation_failed"
        assert victim.url.removeprefix("http://") not in json.dumps(stored)
    finally:
        if victim is not None:
            victim.start()
            cluster.wait_healthy()


def test_a_turn_sent_to_a_just_killed_node_is_retried_on_the_other(cluster: Cluster) -> None:
    """Guards retrying before the first token: a conversation's node dies right before
    its next turn; the turn still answers 200 and complete, from the other node, after
    one failed attempt on the dead one, and ``router_retries_total`` counts it."""
    with cluster.client() as client:
        conversation_id = cluster.new_conversation(client)
        home = cluster.served_turn(client, conversation_id)
        other = next(n.url for n in cluster.nodes if n.url != home)
        victim = cluster.node_at(home)
        retries, ok, unavailable = (
            cluster.retries(),
            cluster.attempts(),
            cluster.attempts("unavailable"),
        )
        victim.kill()
        try:
            answer = cluster.turn(
                client, conversation_id, options={"retrieval_k": 0, "max_tokens": 8}
            )
            assert answer["content"]
            assert cluster.attempts() - ok == Counter({other: 1})
            assert cluster.attempts("unavailable") - unavailable == Counter({home: 1})
            assert cluster.retries() == retries + 1
        finally:
            victim.start()
            cluster.wait_healthy()


def test_a_restarted_node_is_probed_back_in_and_gets_its_conversations_back(
    cluster: Cluster,
) -> None:
    """Guards health probes: a dead node is marked unhealthy by the prober alone (no
    request fails on it: the next turn goes straight to the other node, no retry);
    once restarted it is healthy again within a few probe intervals (1 s here, 1 s
    cooldown) and its conversation returns to it."""
    with cluster.client() as client:
        conversation_id = cluster.new_conversation(client)
        home = cluster.served_turn(client, conversation_id)
        victim = cluster.node_at(home)
        victim.kill()
        try:
            wait_until(lambda: not cluster.routing()[home]["healthy"], 6, "the prober marks it")
            retries = cluster.retries()
            assert cluster.served_turn(client, conversation_id) != home
            assert cluster.retries() == retries, "an unhealthy node is not even tried"
        finally:
            victim.start()
        back = time.monotonic()
        cluster.wait_healthy(timeout=6)
        assert time.monotonic() - back < 6
        assert cluster.served_turn(client, conversation_id) == home


def test_the_canary_gets_its_share_of_conversations_and_each_keeps_its_version(
    cluster: Cluster, registered: None
) -> None:
    """Guards canary rollouts: with v2 as a 30 % canary, the share of new conversations
    answered by v2 is within 4 binomial standard deviations of 30 % (n = 80: sd
    0.051, bound 0.205, a false alarm about once in 16,000 runs); each version is
    served by its own node; a conversation keeps its version when the split moves
    to 100 % or 0 %; a rollback sends everyone back to v1."""
    n, p = 80, 0.3
    a, b = cluster.nodes
    _rollout(cluster, stable="v1", canary="v2", canary_percent=p * 100)
    per_version = {v: cluster.attempts(version=v) for v in ("v1", "v2")}

    def first_turn(_: int) -> tuple[str, str]:
        with cluster.client() as client:
            conversation_id = cluster.new_conversation(client)
            answer = cluster.turn(
                client, conversation_id, model=MODEL, options={"retrieval_k": 0, "max_tokens": 1}
            )
        assert answer["model"] == MODEL
        return conversation_id, answer["model_version"]

    try:
        with ThreadPoolExecutor(8) as pool:
            arms = list(pool.map(first_turn, range(n)))
        counts = Counter(version for _, version in arms)
        share = counts["v2"] / n
        assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n), counts
        assert cluster.attempts(version="v1") - per_version["v1"] == Counter({a.url: counts["v1"]})
        assert cluster.attempts(version="v2") - per_version["v2"] == Counter({b.url: counts["v2"]})

        stable = [c for c, v in arms if v == "v1"][:3]
        canary = [c for c, v in arms if v == "v2"][:3]
        with cluster.client() as client:
            _rollout(cluster, stable="v1", canary="v2", canary_percent=100)
            for conversation_id in stable:
                assert cluster.turn(client, conversation_id, model=MODEL)["model_version"] == "v1"
            _rollout(cluster, stable="v1", canary="v2", canary_percent=0)
            for conversation_id in canary:
                assert cluster.turn(client, conversation_id, model=MODEL)["model_version"] == "v2"
    finally:
        with cluster.admin() as admin:
            rolled = admin.post(f"/v1/admin/models/{MODEL}/rollback")
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["rollout"]["canary"] is None
    with cluster.client() as client:
        assert cluster.turn(client, canary[0], model=MODEL)["model_version"] == "v1"


def test_a_shadow_version_gets_a_copy_of_every_turn_stored_and_never_shown(
    cluster: Cluster, registered: None
) -> None:
    """Guards shadow traffic: with v2 shadowing v1 at sample rate 1.0, clients only ever
    see v1's answers, node b generates a copy of every turn, and the shadow summary
    counts every copy with similarity, TTFT and latency figures."""
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    _, b = cluster.nodes
    shadowed = cluster.attempts(version="v2")
    _rollout(cluster, stable="v1", shadows=[{"version": "v2", "sample_rate": 1.0}])
    turns = 4
    try:
        with cluster.client() as client:
            answers = [
                cluster.turn(
                    client,
                    cluster.new_conversation(client),
                    model=MODEL,
                    options={"retrieval_k": 0, "max_tokens": 8},
                )
                for _ in range(turns)
            ]
            shown = client.get(f"/v1/conversations/{answers[0]['conversation_id']}").json()
        with cluster.admin() as admin:

            def summary() -> dict[str, Any] | None:
                got = admin.get(
                    f"/v1/admin/models/{MODEL}/shadows/v2/summary", params={"since": since}
                )
                assert got.status_code == 200, got.text
                body: dict[str, Any] = got.json()
                return body if body["answers"] >= turns else None

            result = wait_until(summary, 60, "every shadow answer stored", every=0.5)
    finally:
        _rollout(cluster, stable="v1")
    assert {a["model_version"] for a in answers} == {"v1"}
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert result["answers"] == turns
    assert result["failed"] == 0
    assert result["primary_versions"] == ["v1"]
    assert 0 < result["similarity"]["p50"] <= 1.0001
    assert result["ttft_ms"]["p50"] > 0
    assert result["latency_ms"]["p50"] > 0
    assert result["primary_latency_ms"]["p50"] > 0
    assert cluster.attempts(version="v2") - shadowed == Counter({b.url: turns})


async def test_cancelling_a_websocket_turn_frees_the_nodes_slot_at_once(cluster: Cluster) -> None:
    """Guards cancel through the router: a cancelled WebSocket turn closes the upstream
    stream, so the serving node's ``num_requests_running`` is back to 0 within 2 s
    and it generates no further token; the turn is stored ``cancelled``."""
    ws = await connect(cluster.api.ws_url, cluster.key)
    async with ws:
        await send(ws, "chat", "long", LONG)
        seen: list[dict[str, Any]] = []
        while not any(m["type"] == "token" for m in seen):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        node = await asyncio.to_thread(_serving_node, cluster)
        await send(ws, "cancel", "long", {})
        cancelled_at = time.monotonic()
        seen += await until_end(ws, "long")
        await asyncio.to_thread(
            wait_until, lambda: cluster.running(node) == 0, 2.0, "the node's slot is freed"
        )
        freed_s = time.monotonic() - cancelled_at
        generated = node.metric("ragserve:generation_tokens_total")
        await asyncio.sleep(0.5)
        assert node.metric("ragserve:generation_tokens_total") == generated, "still decoding"
    assert seen[-1]["type"] == "done", seen[-1]
    assert seen[-1]["payload"]["finish_reason"] == "cancelled"
    assert freed_s <= 2.0
    with cluster.client() as client:
        conversation_id = seen[0]["payload"]["conversation_id"]
        stored = client.get(f"/v1/conversations/{conversation_id}").json()["messages"][-1]
    assert stored["status"] == "cancelled"


def test_an_overloaded_node_is_a_429_with_retry_after_never_a_500(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Guards overload answers: a node with one slot and one queue place, sent six
    requests at once through the API node's OpenAI endpoint, answers some and refuses
    the rest; every refusal reaches the client as 429 with ``Retry-After`` and an
    OpenAI ``rate_limit_error`` body, and nothing is a 500."""
    busy = InferenceNode(
        tmp_path,
        {
            **NODE_ENV,
            "RAGSERVE_GENERATION_MAX_RUNNING": "1",
            "RAGSERVE_GENERATION_MAX_WAITING": "1",
        },
    )
    busy.start()
    name = "routing-busy"
    admin = cluster.admin()
    try:
        assert admin.post("/v1/admin/models", json={"name": name}).status_code == 201
        version = {"version": "v1", "backend": "remote", "endpoints": [{"url": busy.url}]}
        created = admin.post(f"/v1/admin/models/{name}/versions", json=version)
        assert created.status_code == 201, created.text
        body = {
            "model": name,
            "messages": [{"role": "user", "content": "Tell me about bees."}],
            "max_tokens": 24,
            "retrieval": {"enabled": False},
        }

        def ask(_: int) -> httpx.Response:
            with cluster.client() as client:
                return client.post("/v1/chat/completions", json=body)

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(ask, range(6)))
    finally:
        admin.delete(f"/v1/admin/models/{name}")
        admin.close()
        busy.stop()
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, [(r.status_code, r.text[:200]) for r in responses]
    assert statuses[200] >= 1, statuses
    assert statuses[429] >= 1, statuses
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["type"] == "rate_limit_error"
