"""``schemathesis run --checks all`` over a live server with the model: the schema is the contract.

Guards what issue 16 found: unknown fields rejected while the schema allowed them,
cursor and collection limits it did not state, a body it required that the server
did not, ``TRACE`` not answered 405 with ``Allow``. Every operation gets a few
positive and negative examples (about a minute against the real server process,
with the generation engine, the embedder and the vector store); a plain user key
of scopes ``chat`` and ``documents:write`` drives the tenant's routes and a
platform admin key the admin routes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.model]

# Every check: no server error, answers as documented (status, headers, body, the
# methods in ``Allow``), schema-valid requests accepted and schema-violating ones
# refused. Earlier runs found, and these now guard: the embeddings ``input`` list
# bounds, ``42.0`` refused for OpenAI integer fields, ``"true"`` taken for a
# boolean, collection names the schema allowed and the server refused, an
# undocumented upload body and its 200/201 answers, and ``OPTIONS`` listing only
# one handler's methods. (Set in CONFIG rather than by ``--checks all``, which would
# override the one per-operation exception below.)

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
EXAMPLES_PER_OPERATION = 15

# NOTE: a cursor is opaque (base64url of what ``kernel.cursor`` encodes): the schema
# states its alphabet and length, but no schema can say which strings the server
# issued, so a well-formed cursor it did not issue is a 400 ``invalid cursor``.
# For the three operations that take a cursor, 400 counts as an answer to
# schema-valid input.
# Nor can it relate two fields, or a field and the registry's state: a remote
# version needs an endpoint and lists each URL once (an http one), ``max_tokens``
# stays within ``max_tokens_limit``, a rollout names registered versions, ``since``
# comes before ``until``; the registry refuses the rest with a 422.
# Likewise a file's bytes are beyond any schema: an upload that is empty, binary
# under a text type, a PDF without its header or of a type no extractor reads is a
# 415 or 422 whatever its multipart or JSON shape (``retrieval/sniff.py``). And a
# multipart part is bytes: the "number" 42 sent where a file goes is the file "42",
# so schemathesis's wrongly typed uploads are not wrong; the negative check is off
# for uploads only (the JSON variant's model refuses wrong types like every body).
# A batch input file is likewise checked line by line after its multipart shape:
# 400 names the line at fault.
CONFIG = """
[checks]
enabled = true

[[operations]]
include-name-regex = "^GET /v1/(conversations|documents|conversations/[{]conversation_id[}])$"
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "404", "429"]

[[operations]]
include-name = [
    "POST /v1/admin/models/{name}/versions",
    "PUT /v1/admin/models/{name}/rollout",
    "GET /v1/admin/models/{name}/shadows/{version}/summary",
    "GET /v1/admin/tenants/{tenant_id}/usage",
]
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "401", "403", "404", "409", "422", "429"
]

[[operations]]
include-name = "POST /v1/files"
checks.negative_data_rejection.enabled = false
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "413", "429"]

[[operations]]
include-name = "POST /v1/documents"
checks.negative_data_rejection.enabled = false
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "401", "403", "404", "409", "413", "415", "422", "429"
]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    data_dir = tmp_path_factory.mktemp("contract")
    # NOTE: uploads are fuzzed too; ``?wait=true`` then answers 202 after 2 s rather
    # than waiting for every generated document to be indexed.
    server = Server(
        data_dir,
        extra_env={
            "RAGSERVE_RATE_LIMIT_ENABLED": "false",
            "RAGSERVE_INGESTION_WAIT_TIMEOUT_S": "2",
        },
    )
    server.cli("migrate")
    user_key = server.create_key("acme")
    platform_key = server.cli(
        "keys", "create", "--tenant", "ops", "--role", "admin", "--scope", "platform:admin"
    ).split()[-1]
    server.start()
    try:
        yield server, user_key, platform_key
    finally:
        server.stop()


def _schemathesis(server: Server, key: str, where: str, tmp_path: Path) -> str:
    """``schemathesis run`` with every check on the operations ``where`` picks; its output."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [
            SCHEMATHESIS, "--config-file", str(config), "run",
            f"{server.url}/schema/openapi.json",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(EXAMPLES_PER_OPERATION),
            "--seed", "16",
            "--header", f"Authorization: Bearer {key}",
            "--request-timeout", "60",
            "--output-sanitize", "false",
            "--warnings", "off",
            *where.split(),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-12_000:] + done.stderr[-3_000:]
    return done.stdout


def test_tenant_routes_keep_the_schema(server: tuple[Server, str, str], tmp_path: Path) -> None:
    live, user_key, _ = server
    _schemathesis(live, user_key, "--exclude-path-regex ^/v1/admin", tmp_path)


def test_admin_routes_keep_the_schema(server: tuple[Server, str, str], tmp_path: Path) -> None:
    live, _, platform_key = server
    _schemathesis(live, platform_key, "--include-path-regex ^/v1/admin", tmp_path)
