"""Tenants' own safety policies: stored on SQLite and PostgreSQL, applied at once by
the node that stored them and by every other node at its next refresh.

The console's page over them is driven in tests/e2e/test_console.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from app.chat.prompt import Source
from app.chat.safety_gate import SafetyGate
from retrieval import SentenceTransformerEmbedder
from safety import InvalidPolicyError, Policy, PolicyStore, VerdictStore
from tests.integration.safety.test_chunk_filter import EXEMPLARS, PLANTED

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

SOURCES = [
    Source(1, "c1", "d1", "valleys.md", "default", 0, 0.9, "Glaciers carve valleys."),
    Source(2, "c2", "d2", "poisoned.md", "default", 0, 0.8, PLANTED),
]


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def _gate(
    sessions: async_sessionmaker[AsyncSession], embedder: SentenceTransformerEmbedder
) -> SafetyGate:
    file_policies = {
        "default": Policy(),
        "t-file": Policy.from_mapping({"retrieval_action": "refuse"}),
    }
    return SafetyGate(
        file_policies,
        embedder,
        VerdictStore(sessions),
        cache_dir=EXEMPLARS,
        stored=PolicyStore(sessions),
        refresh_s=3600,
    )


def test_a_policy_document_round_trips_and_bad_ones_say_why() -> None:
    policy = Policy.from_mapping(
        {
            "retrieval_action": "flag",
            "actions": {"pii": "flag"},
            "blocked_topics": [{"name": "rivals", "keywords": ["globex"]}],
            "injection_threshold": 0.7,
        }
    )
    assert Policy.from_mapping(policy.to_mapping()) == policy
    assert Policy.from_mapping(Policy().to_mapping()) == Policy()
    store_errors = {
        "{": "not valid JSON",
        "[1, 2]": "JSON object",
        json.dumps({"actions": {"pii": "explode"}}): "not valid",
        json.dumps({"input_filters": ["telepathy"]}): "unknown input_filters",
        json.dumps({"max_input_chars": "lots"}): "not valid",
        json.dumps({"blocked_topics": [{"keywords": ["x"]}]}): "not valid",
        json.dumps({"blocked_topics": [{"name": "x" * 70_000}]}): "KiB",
    }
    from safety.policy_store import parse_policy

    for document, message in store_errors.items():
        with pytest.raises(InvalidPolicyError, match=message):
            parse_policy(document)


async def test_a_tenants_own_policy_replaces_the_files_on_every_node(
    sessions: async_sessionmaker[AsyncSession], embedder: SentenceTransformerEmbedder
) -> None:
    here, there = _gate(sessions, embedder), _gate(sessions, embedder)
    await here.start()
    await there.start()
    try:
        assert here.policy("t-file")[0] == "file"
        assert here.policy("t-other")[0] == "default"
        # The file drops the poisoned chunk for t-file; its admin wants it flagged only.
        kept, refused, _ = await here.filter_sources("t-file", SOURCES)
        assert [s.document_name for s in refused] == ["poisoned.md"]

        await here.set_policy("t-file", json.dumps({"retrieval_action": "flag"}), "console:ada")
        source, policy = here.policy("t-file")
        assert (source, str(policy.retrieval_action)) == ("stored", "flag")
        kept, refused, _ = await here.filter_sources("t-file", SOURCES)
        assert [s.text for s in kept] == ["Glaciers carve valleys.", PLANTED]
        assert refused == []
        assert kept[1].to_dict()["verdict"]["action"] == "flag"
        # Another tenant is untouched.
        assert here.policy("t-other")[0] == "default"

        # Another node sees it at its next refresh.
        assert there.policy("t-file")[0] == "file"
        await there.refresh()
        assert there.policy("t-file")[0] == "stored"
        kept, refused, _ = await there.filter_sources("t-file", SOURCES)
        assert refused == []

        # A bad policy changes nothing anywhere.
        with pytest.raises(InvalidPolicyError):
            await here.set_policy("t-file", '{"retrieval_action": "allow"}', "console:ada")
        assert str(here.policy("t-file")[1].retrieval_action) == "flag"

        # Dropped, the file's applies again, here at once and there after a refresh.
        await here.reset_policy("t-file")
        await there.refresh()
        assert here.policy("t-file")[0] == "file"
        assert there.policy("t-file")[0] == "file"
        kept, refused, _ = await there.filter_sources("t-file", SOURCES)
        assert [s.document_name for s in refused] == ["poisoned.md"]
    finally:
        await here.stop()
        await there.stop()


async def test_the_store_says_who_set_a_policy_and_when(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = PolicyStore(sessions)
    assert await store.get("t1") is None
    await store.put("t1", {"leak_ngram": 6}, "console:ada")
    first = await store.get("t1")
    assert first is not None
    document, by, at = first
    assert document["leak_ngram"] == 6
    assert by == "console:ada"
    await store.put("t1", {"leak_ngram": 7}, "console:bob")
    second = await store.get("t1")
    assert second is not None
    assert second[0]["leak_ngram"] == 7
    assert second[1] == "console:bob"
    assert second[2] >= at
    assert set(await store.versions()) == {"t1"}
    await store.delete("t1")
    assert await store.versions() == {}
