"""Readiness: every dependency of this node answers, and the model is loaded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from kernel.db import check_health

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from inference import Engine
    from retrieval import RetrievalService

__all__ = ["Readiness", "ReadinessReport"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Each check's outcome by name: ``"ok"``, ``"failed"`` or ``"timeout"``.

    NOTE: never the exception's text, which names hosts and library internals;
    that goes to the log (``readiness_check_failed``).
    """

    checks: dict[str, str]
    optional: frozenset[str] = frozenset()
    """Checks whose failure degrades the node but does not unready it."""

    @property
    def ready(self) -> bool:
        return all(v == "ok" for k, v in self.checks.items() if k not in self.optional)

    @property
    def degraded(self) -> bool:
        return any(self.checks[k] != "ok" for k in self.optional if k in self.checks)


class Readiness:
    """Probes the database, the vector store, the engine and Redis (those configured).

    NOTE: Redis is optional: every API node shares one, and every Redis path has a
    fallback (``docs/reliability.md``), so a Redis outage degrades each node rather
    than taking every node out of the load balancer at once.
    """

    def __init__(
        self,
        db: AsyncEngine,
        retrieval: RetrievalService,
        engine: Engine | None,
        redis: Redis | None,
        timeout_s: float = 5.0,
        *,
        generation: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        probes: dict[str, Callable[[], Awaitable[Any]]] = {
            "database": lambda: check_health(db),
            "vector_store": retrieval.check_health,
        }
        if engine is not None:
            probes["engine"] = engine.check_health
        if redis is not None:
            probes["redis"] = redis.ping
        if generation is not None:
            probes["generation_backends"] = generation
        self._probes = probes
        self._timeout_s = timeout_s

    async def check(self) -> ReadinessReport:
        """Run every probe, each bounded by the timeout."""
        checks: dict[str, str] = {}
        for name, probe in self._probes.items():
            try:
                await asyncio.wait_for(probe(), timeout=self._timeout_s)
                checks[name] = "ok"
            except TimeoutError:
                checks[name] = "timeout"
                log.warning("readiness_check_failed", check=name, error="timeout")
            except Exception as exc:
                checks[name] = "failed"
                log.warning("readiness_check_failed", check=name, error=repr(exc))
        return ReadinessReport(checks, frozenset({"redis"}))
