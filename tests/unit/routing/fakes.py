"""An in-process engine for the router's unit tests, deterministic and told how to fail,
and the helpers around it.

The router's logic (balancing, health, retries) is what these tests prove; real
``ragserve inference`` processes behind the router are the end-to-end tests' job.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import CollectorRegistry

from app.routing.balancer import rendezvous
from app.routing.endpoints import Endpoint
from app.routing.router import Router
from app.routing.specs import EndpointSpec, VersionSpec
from inference.engine import Engine
from inference.errors import EngineOverloadedError, EngineUnavailableError, InvalidRequestError
from inference.types import FinishEvent, FinishReason, GenerationRequest, Priority, TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    from inference.types import ChatMessage, GenerationEvent

Mode = Literal["ok", "unavailable", "overloaded", "invalid", "break", "error_first"]


class FakeEngine(Engine):
    """Streams ``tokens``, or fails as ``mode`` says.

    Modes: ``unavailable``, ``overloaded`` (with ``retry_after``) and ``invalid``
    raise before the first token; ``break`` ends with an error after the first
    token; ``error_first`` ends with an error before any token. ``hold`` keeps
    every stream waiting after its first token until ``release`` (or the request is
    aborted).
    """

    def __init__(self, url: str, tokens: Sequence[str] = ("Hel", "lo", "!")) -> None:
        self.url = url
        self.model_name = "fake"
        self.model_version = "1"
        self.tokens = tuple(tokens)
        self.mode: Mode = "ok"
        self.retry_after = 1.0
        self.delay_s = 0.0
        self._hold = False
        self._changed = asyncio.Condition()
        self.healthy = True
        self.start_error: Exception | None = None
        self.refuse_capacity = False
        self.capacity_asked: list[Priority] = []
        self.starts = 0
        self.stops = 0
        self.requests: list[str] = []
        self.closed: list[str] = []
        self.aborted: list[str] = []

    def hold(self) -> None:
        """Keep new and running streams waiting after their first token."""
        self._hold = True

    async def release(self) -> None:
        """Let held streams go on."""
        async with self._changed:
            self._hold = False
            self._changed.notify_all()

    async def start(self) -> None:
        self.starts += 1
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.stops += 1

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        rid = request.request_id
        self.requests.append(rid)
        prompt = len(request.prompt_token_ids)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.mode == "unavailable":
            raise EngineUnavailableError(f"{self.url} refused the connection")
        if self.mode == "overloaded":
            raise EngineOverloadedError(f"{self.url} is full", retry_after=self.retry_after)
        if self.mode == "invalid":
            raise InvalidRequestError("the prompt is too long")
        try:
            if self.mode == "error_first":
                yield FinishEvent(FinishReason.ERROR, prompt, 0, error="upstream broke")
                return
            for index, text in enumerate(self.tokens):
                yield TokenEvent(index, text)
                if index == 0 and self.mode == "break":
                    yield FinishEvent(FinishReason.ERROR, prompt, 1, error="connection reset")
                    return
                async with self._changed:
                    await self._changed.wait_for(lambda: not self._hold or rid in self.aborted)
                if rid in self.aborted:
                    yield FinishEvent(FinishReason.CANCELLED, prompt, index + 1)
                    return
            yield FinishEvent(FinishReason.STOP, prompt, len(self.tokens))
        except GeneratorExit:
            self.closed.append(rid)
            raise

    async def abort(self, request_id: str) -> None:
        async with self._changed:
            self.aborted.append(request_id)
            self._changed.notify_all()

    def check_capacity(self, priority: Priority = Priority.ONLINE) -> None:
        self.capacity_asked.append(priority)
        if self.refuse_capacity:
            raise EngineOverloadedError("queue full", retry_after=2.0)

    async def check_health(self) -> None:
        if not self.healthy:
            raise EngineUnavailableError(f"{self.url} is down")

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        return [len(m.content) for m in messages]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class Factory:
    """The router's engine factory: one ``FakeEngine`` per URL, kept for inspection.

    ``engines[url]`` is the latest engine built for ``url``; ``built`` counts them;
    a URL in ``refuse`` raises as a malformed one would.
    """

    def __init__(self) -> None:
        self.engines: dict[str, FakeEngine] = {}
        self.built = 0
        self.configure: dict[str, dict[str, object]] = {}
        self.refuse: set[str] = set()

    def __call__(self, version: VersionSpec, spec: EndpointSpec) -> FakeEngine:
        if spec.url in self.refuse:
            raise ValueError(f"not an http(s) URL: {spec.url}")
        self.built += 1
        engine = FakeEngine(spec.url)
        for name, value in self.configure.get(spec.url, {}).items():
            setattr(engine, name, value)
        self.engines[spec.url] = engine
        return engine


def remote(*urls: str | tuple[str, float], version: str = "v1", **kwargs: object) -> VersionSpec:
    """A remote version of model ``m`` served by ``urls`` (``(url, weight)`` pairs allowed)."""
    specs = tuple(EndpointSpec(u) if isinstance(u, str) else EndpointSpec(*u) for u in urls)
    return VersionSpec(model="m", version=version, backend="remote", endpoints=specs, **kwargs)  # type: ignore[arg-type]


def request(rid: str = "r1", deadline: float | None = None) -> GenerationRequest:
    return GenerationRequest(request_id=rid, prompt_token_ids=[1, 2, 3], deadline=deadline)


async def collect(stream: AsyncGenerator[GenerationEvent, None]) -> list[GenerationEvent]:
    return [event async for event in stream]


def text_of(events: Sequence[GenerationEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent))


class Clock:
    """Health's time, moved by hand so cooldowns need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    router: Router
    factory: Factory
    registry: CollectorRegistry
    clock: Clock

    @classmethod
    def build(cls, **kwargs: Any) -> Harness:
        """A router over ``FakeEngine``s with metrics, a clock and draws of its own."""
        factory, registry, clock = Factory(), CollectorRegistry(), Clock()
        kwargs.setdefault("rng", random.Random(0))
        return cls(
            Router(factory, registry=registry, clock=clock, **kwargs), factory, registry, clock
        )

    def engine(self, url: str) -> FakeEngine:
        return self.factory.engines[url]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(f"ragserve:{name}", {"model": "m", **labels})
        return 0.0 if value is None else value

    def status(self, version: VersionSpec, url: str) -> Any:
        return next(s for s in self.router.health(version) if s.url == url)


def key_for(url: str, version: VersionSpec) -> str:
    """A conversation key whose affinity lands on ``url`` among ``version``'s endpoints."""
    endpoints = [
        Endpoint("m", "v1", s.url, s.weight, FakeEngine(s.url), owned=True)
        for s in version.endpoints
    ]
    return next(f"c{n}" for n in range(1000) if rendezvous(f"c{n}", endpoints).url == url)
