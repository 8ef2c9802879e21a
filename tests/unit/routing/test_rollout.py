"""Which version answers: canary share, stickiness, tenant pins and shadow sampling."""

from __future__ import annotations

import uuid

from app.routing.rollout import bucket, choose, shadows_for
from app.routing.specs import EndpointSpec, ModelSpec, RolloutSpec, ShadowSpec, VersionSpec


def _model(rollout: RolloutSpec) -> ModelSpec:
    versions = {
        v: VersionSpec("m", v, "remote", (EndpointSpec(f"http://{v}:1"),))
        for v in ("v1", "v2", "v3")
    }
    return ModelSpec("m", versions, rollout)


def test_the_canary_gets_its_share_of_conversations_within_tolerance() -> None:
    model = _model(RolloutSpec("v1", canary="v2", canary_percent=10))
    ids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(20_000)]
    share = sum(
        choose(model, tenant_id="t", conversation_id=c).version.version == "v2" for c in ids
    )
    assert abs(share / len(ids) - 0.10) < 0.01


def test_a_conversation_keeps_its_version_when_the_split_changes() -> None:
    """Guards stickiness: a conversation on the canary stays there at a higher share,
    and one answered by a version keeps it while that version serves the model."""
    before = _model(RolloutSpec("v1", canary="v2", canary_percent=10))
    after = _model(RolloutSpec("v1", canary="v2", canary_percent=30))
    ids = [str(uuid.uuid4()) for _ in range(2000)]
    on_canary = [c for c in ids if choose(before, tenant_id="t", conversation_id=c).arm == "canary"]
    assert on_canary
    assert all(choose(after, tenant_id="t", conversation_id=c).arm == "canary" for c in on_canary)
    # The version stored on the conversation's last answer wins over the hash.
    stable_one = next(c for c in ids if bucket("m", c) >= 30)
    kept = choose(after, tenant_id="t", conversation_id=stable_one, previous_version="v2")
    assert kept.version.version == "v2"
    # ... unless that version no longer serves the model.
    gone = choose(
        _model(RolloutSpec("v1")), tenant_id="t", conversation_id="c", previous_version="v2"
    )
    assert gone.version.version == "v1"


def test_a_tenant_pin_wins_over_the_split() -> None:
    model = _model(RolloutSpec("v1", canary="v2", canary_percent=100, tenant_pins={"acme": "v3"}))
    assert choose(model, tenant_id="acme", conversation_id="c").version.version == "v3"
    assert choose(model, tenant_id="acme", conversation_id="c").arm == "pinned"
    assert choose(model, tenant_id="other", conversation_id="c").version.version == "v2"


def test_shadows_sample_their_rate_and_never_shadow_the_answering_version() -> None:
    model = _model(RolloutSpec("v1", shadows=(ShadowSpec("v3", 0.25),)))
    ids = [str(uuid.uuid4()) for _ in range(8000)]
    sampled = sum(bool(shadows_for(model, m, "v1")) for m in ids)
    assert abs(sampled / len(ids) - 0.25) < 0.03
    assert shadows_for(model, ids[0], "v3") == []


def test_the_bucket_is_the_same_on_every_node() -> None:
    assert bucket("m", "abc") == bucket("m", "abc")
    assert 0 <= bucket("m", "abc") < 100
