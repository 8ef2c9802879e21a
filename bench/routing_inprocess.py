"""The router's added latency, in-process: ``RemoteEngine`` straight at a node against
a ``Router`` over the same node, built as ``app/server/components.py`` builds it."""

from __future__ import annotations

import time
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from app.chat.prompt import build_messages
from app.routing.router import Router
from app.routing.specs import EndpointSpec, VersionSpec
from bench.generation_stats import percentile
from bench.routing_load import Prompts, Sample, alternate, difference
from inference import GenerationRequest, SamplingParams, TokenEvent
from inference.remote_engine import RemoteEngine

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable

    from inference import Engine, GenerationEvent
    from tests.support.inference_node import InferenceNode


class StampedEngine(RemoteEngine):
    """A ``RemoteEngine`` that notes when it is asked and when it hands out each event,
    so the router's own time is what lies between those stamps and its caller."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.asked: dict[str, float] = {}
        self.handed: dict[str, list[float]] = {}

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        self.asked[request.request_id] = time.perf_counter()
        stamps = self.handed.setdefault(request.request_id, [])
        async with aclosing(super().generate(request)) as events:
            async for event in events:
                stamps.append(time.perf_counter())
                yield event


async def router_overhead(node: InferenceNode, prompts: Prompts, rounds: int) -> Any:
    """``RemoteEngine`` straight at ``node`` against a ``Router`` over it, in-process.

    Besides both requests' end-to-end figures (which the node's own variation
    dominates), the router's own time is measured inside the routed requests: from
    ``generate`` to its engine being asked, and from the engine handing out an
    event to the router's caller receiving it.
    """
    version = VersionSpec("bench", "v1", "remote", (EndpointSpec(node.url),))
    routed: list[StampedEngine] = []

    def remote(v: VersionSpec, endpoint: EndpointSpec) -> Engine:  # as build_router does
        engine = StampedEngine(endpoint.url, model_name=v.model, model_version=v.version)
        routed.append(engine)
        return engine

    router = Router(remote)
    await router.sync([version])
    await router.start()
    direct = StampedEngine(node.url)
    await direct.start()
    before_us: list[float] = []
    per_event_us: list[float] = []

    async def run(
        events_of: Callable[[GenerationRequest], AsyncIterator[GenerationEvent]],
        engine: Callable[[], StampedEngine],
        question: str,
    ) -> Sample:
        messages = tuple(build_messages(question, [], []))
        request = GenerationRequest(
            str(uuid.uuid4()), sampling=SamplingParams(max_tokens=16), messages=messages
        )
        sample = Sample(time.perf_counter())
        received: list[float] = []
        async for event in events_of(request):
            received.append(time.perf_counter())
            if isinstance(event, TokenEvent):
                sample.tokens += 1
                sample.first = sample.first or received[-1]
        sample.end = time.perf_counter()
        stamped = engine()
        handed = stamped.handed.pop(request.request_id)
        if stamped is not direct:
            before_us.append((stamped.asked.pop(request.request_id) - sample.start) * 1e6)
            per_event_us.extend((r - h) * 1e6 for r, h in zip(received, handed, strict=True))
        return sample

    conversation = str(uuid.uuid4())
    try:
        a, b = await alternate(
            lambda q: run(direct.generate, lambda: direct, q),
            lambda q: run(
                lambda r: router.generate(version, r, affinity_key=conversation),
                lambda: routed[0],
                q,
            ),
            prompts,
            rounds,
        )
    finally:
        await router.stop()
        await direct.stop()
    out = difference("remote_engine", a, "router", b)
    out["router_own_us"] = {
        "before_engine": {f"p{q}": round(percentile(before_us, q / 100), 1) for q in (50, 95)},
        "per_event": {f"p{q}": round(percentile(per_event_us, q / 100), 1) for q in (50, 95)},
        "events": len(per_event_us),
    }
    print(f"  the router's own time (us): {out['router_own_us']}")
    return out
