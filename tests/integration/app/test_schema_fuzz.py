"""Schemathesis over the app's own OpenAPI schema: no 5xx, no answer that breaks the schema.

The app runs in-process (SQLite, Qdrant local mode, the real embedder) through
schemathesis' ASGI transport, with an API key of its tenant. The generation engine
is not loaded, to keep the run short: chat routes then answer 503
``unavailable`` ("Generation is not enabled on this node."), a documented answer
and the only 5xx let through.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans

from app.core.settings import Settings
from app.server.factory import create_app
from app.server.lifespan import open_state
from conversation import ApiKeyService, TenantService
from kernel.db import create_engine, session_factory
from kernel.migrations import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.model

# Examples per operation and mode: about a minute and a half for the whole schema here.
POSITIVE_EXAMPLES = 12
NEGATIVE_EXAMPLES = 8
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzzed_app(settings: Settings) -> Any:
    """The app, its services opened without a generation engine in its own lifespan."""
    state: dict[str, Any] = {}

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            async with AsyncExitStack() as stack:
                opened = await open_state(settings, stack, with_engine=False)
                state["app"] = create_app(settings, opened)
                await state["app"](scope, receive, send)
            return
        await state["app"](scope, receive, send)

    return asgi


async def _create_keys(database_url: str) -> tuple[str, str]:
    """A user's key and an admin's key of one tenant."""
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        tenant = await TenantService(sessions).ensure("fuzz")
        keys = ApiKeyService(sessions)
        user = await keys.create(tenant.id)
        admin = await keys.create(tenant.id, "admin", role="admin")
        return user.secret, admin.secret
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def schema_and_keys(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, tuple[str, str]]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("fuzz"))
    settings.safety.enabled = False
    settings.server.log_level = "warning"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    keys = asyncio.run(_create_keys(settings.database_url))
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", fuzzed_app(settings))
    yield schema, keys
    shutdown_lifespans()


def _generation_disabled(response: Any) -> bool:
    if response.status_code != 503:
        return False
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return "Generation is not enabled" in str(error.get("message"))


def _fuzz(operation: Any, mode: GenerationMode, examples: int, auth: dict[str, str]) -> list[str]:
    """Run ``examples`` cases of ``operation``; the problems found, one line each."""
    failures: list[str] = []

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(headers=auth)
        where = f"{case.method} {case.formatted_path} ({mode.value})"
        if _generation_disabled(response):
            return
        if response.status_code >= 500:
            failures.append(
                f"{where}: {response.status_code} {response.content[:300]!r} "
                f"for query={case.query} body={str(case.body)[:200]}"
            )
            return
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except Exception as exc:
            failures.append(f"{where}: {str(exc)[:600]}")

    try:
        run()
    except Unsatisfiable:
        # No input to make invalid (``GET /healthz`` in negative mode).
        assert mode is GenerationMode.NEGATIVE
    return failures


def test_no_operation_answers_5xx_or_breaks_its_schema(
    schema_and_keys: tuple[Any, tuple[str, str]],
) -> None:
    schema, (user_key, admin_key) = schema_and_keys
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        # Admin and labeling routes with the admin's key, so they are fuzzed beyond
        # their 403.
        key = admin_key if operation.path.startswith(("/v1/admin", "/v1/labeling")) else user_key
        auth = {"Authorization": f"Bearer {key}"}
        failures += _fuzz(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, auth)
        failures += _fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, auth)
    assert not failures, "\n\n".join(failures[:20])


def test_the_schema_states_what_the_server_enforces(tmp_path: Any) -> None:
    """Guards the mismatches schemathesis found (issue 16): extras allowed by the schema
    but refused, an unstated cursor limit, a body required by the schema only."""
    schema = create_app(Settings(data_dir=tmp_path), state={}).openapi_schema.to_schema()
    components = schema["components"]["schemas"]
    assert components["ConversationCreate"]["additionalProperties"] is False
    assert components["SearchRequest"]["additionalProperties"] is False
    create = schema["paths"]["/v1/conversations"]["post"]
    assert create["requestBody"]["required"] is False
    cursor = next(
        p
        for p in schema["paths"]["/v1/conversations"]["get"]["parameters"]
        if p["name"] == "cursor"
    )
    assert cursor["schema"]["maxLength"] == 256
    temperature = components["ChatOptions"]["properties"]["temperature"]
    assert {"type": "number", "minimum": 0.0, "maximum": 2.0} in temperature["anyOf"]


def test_an_unsupported_method_is_405_with_allow(tmp_path: Any) -> None:
    """Guards RFC 9110's ``Allow`` on a 405 (``TRACE`` answered without it before)."""
    from litestar.testing import TestClient

    with TestClient(create_app(Settings(data_dir=tmp_path), state={})) as client:
        response = client.request("TRACE", "/healthz")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "OPTIONS"}
    assert response.json()["error"]["code"] == "method_not_allowed"
