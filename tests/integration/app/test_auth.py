"""Authentication: API keys and JWTs to principals, on SQLite and PostgreSQL.

Each forged, stale or misaddressed token is its own case and must be refused with a
401 whose message says what is wrong. The HTTP and WebSocket paths are driven end
to end in tests/e2e/test_admin_api.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from app.auth.authenticator import Authenticator, bearer_token
from app.auth.jwt import mint_token
from app.auth.principal import Principal, RateLimitOverride
from app.auth.settings import AuthSettings
from app.core.errors import UnauthorizedError
from conversation import ApiKeyService, RateLimit, TenantInfo, TenantService, UserService

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

SECRET = "s" * 64
AUDIENCE = "ragserve-tests"
ISSUER = "https://idp.example"


def _settings(**overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "jwt_audience": AUDIENCE,
        "jwt_issuer": ISSUER,
        "jwt_leeway_s": 5,
    }
    return AuthSettings(**{**values, **overrides})


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> TenantInfo:
    return await TenantService(sessions).ensure("acme")


def _authenticator(
    sessions: async_sessionmaker[AsyncSession], settings: AuthSettings | None = None
) -> Authenticator:
    return Authenticator(settings or _settings(), ApiKeyService(sessions), UserService(sessions))


def _claims(tenant_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "alice",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 600,
        "tenant_id": tenant_id,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed with any bytes (PyJWT refuses a PEM key as an HMAC secret)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _without(tenant_id: str, claim: str) -> str:
    claims = {key: value for key, value in _claims(tenant_id).items() if key != claim}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _tampered_payload(tenant_id: str) -> str:
    head, _, signature = jwt.encode(_claims(tenant_id), SECRET, algorithm="HS256").split(".")
    forged = _b64(json.dumps(_claims(tenant_id, role="admin")).encode())
    return f"{head}.{forged}.{signature}"


def _tampered_signature(tenant_id: str) -> str:
    token = jwt.encode(_claims(tenant_id), SECRET, algorithm="HS256")
    head, body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{body}.{flipped}"


BAD_TOKENS: dict[str, tuple[Callable[[str], str], str]] = {
    "alg_none": (
        lambda t: jwt.encode(_claims(t), None, algorithm="none"),
        "algorithm 'none' is not accepted",
    ),
    "expired": (
        lambda t: jwt.encode(_claims(t, exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
        "expired",
    ),
    "wrong_audience": (
        lambda t: jwt.encode(_claims(t, aud="someone-else"), SECRET, algorithm="HS256"),
        "audience",
    ),
    "wrong_issuer": (
        lambda t: jwt.encode(_claims(t, iss="https://evil.example"), SECRET, algorithm="HS256"),
        "issuer",
    ),
    "missing_exp": (lambda t: _without(t, "exp"), "'exp'"),
    "missing_aud": (lambda t: _without(t, "aud"), "'aud'"),
    "missing_iss": (lambda t: _without(t, "iss"), "'iss'"),
    "missing_sub": (lambda t: _without(t, "sub"), "'sub'"),
    "tampered_payload": (_tampered_payload, "signature is invalid"),
    "tampered_signature": (_tampered_signature, "signature is invalid"),
    "other_secret": (
        lambda t: jwt.encode(_claims(t), "o" * 64, algorithm="HS256"),
        "signature is invalid",
    ),
    "unpinned_hs384": (
        lambda t: jwt.encode(_claims(t), SECRET, algorithm="HS384"),
        "algorithm 'HS384' is not accepted",
    ),
    "unknown_role": (
        lambda t: jwt.encode(_claims(t, role="root"), SECRET, algorithm="HS256"),
        "'role' claim is not one of",
    ),
    "no_tenant_claim": (lambda t: _without(t, "tenant_id"), "tenant claim"),
    "unknown_tenant": (
        lambda t: jwt.encode(_claims("no-such-tenant"), SECRET, algorithm="HS256"),
        "tenant does not exist",
    ),
    "garbage": (lambda t: "not.a.jwt", "malformed"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_token_is_refused_with_a_clear_message(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo, case: str
) -> None:
    make, message = BAD_TOKENS[case]
    with pytest.raises(UnauthorizedError, match=message) as caught:
        await _authenticator(sessions).authenticate(make(tenant.id))
    assert caught.value.status_code == 401


async def test_good_token_maps_claims_to_the_principal(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    settings = _settings(jwt_require_user=False)
    token = mint_token(
        settings, subject="alice", tenant_id=tenant.id, role="labeler", scopes=["chat", "x"]
    )
    principal = await _authenticator(sessions, settings).authenticate(token)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert principal == Principal(
        tenant_id=tenant.id,
        subject="user:alice",
        role="labeler",
        scopes=("chat", "x"),
        expires_at=float(expires_at),
    )
    # A little clock skew is tolerated, within the leeway.
    skewed = jwt.encode(_claims(tenant.id, exp=int(time.time()) - 2), SECRET, algorithm="HS256")
    # No scope claim: the configured default scopes (chat).
    skewed_principal = await _authenticator(sessions, settings).authenticate(skewed)
    assert (skewed_principal.role, skewed_principal.scopes) == ("user", ("chat",))


async def test_stored_user_overrides_the_claim_and_can_be_disabled(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    users = UserService(sessions)
    stored = await users.create(tenant.id, "alice", "user")
    token = jwt.encode(_claims(tenant.id, role="admin"), SECRET, algorithm="HS256")
    authenticator = _authenticator(sessions)
    assert (await authenticator.authenticate(token)).role == "user", "an admin demoted alice"
    await users.update(tenant.id, stored.id, disabled=True)
    with pytest.raises(UnauthorizedError, match="disabled"):
        await authenticator.authenticate(token)


async def test_require_user_refuses_unknown_subjects_by_default(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    """Guards the default: a token for a person the tenant never recorded is refused."""
    authenticator = _authenticator(sessions, _settings())
    token = jwt.encode(_claims(tenant.id, sub="bob"), SECRET, algorithm="HS256")
    with pytest.raises(UnauthorizedError, match="not a user"):
        await authenticator.authenticate(token)
    await UserService(sessions).create(tenant.id, "bob", "labeler")
    assert (await authenticator.authenticate(token)).role == "labeler"


async def test_jwts_are_refused_when_no_key_is_configured(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    token = jwt.encode(_claims(tenant.id), SECRET, algorithm="HS256")
    with pytest.raises(UnauthorizedError):
        await _authenticator(sessions, AuthSettings()).authenticate(token)


async def test_api_key_carries_role_scopes_and_rate_limit(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    created = await ApiKeyService(sessions).create(
        tenant.id, "ops", ["chat"], role="admin", rate_limit=RateLimit(7, 1.5)
    )
    principal = await _authenticator(sessions).authenticate(created.secret)
    assert principal == Principal(
        tenant_id=tenant.id,
        subject=f"key:{created.info.id}",
        role="admin",
        scopes=("chat",),
        key_id=created.info.id,
        rate_limit=RateLimitOverride(burst=7, rate_per_s=1.5),
    )
    await ApiKeyService(sessions).revoke(tenant.id, created.info.id)
    with pytest.raises(UnauthorizedError, match="revoked"):
        await _authenticator(sessions).authenticate(created.secret)


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("jwt") / "public.pem"
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, path


async def test_public_key_deployment_refuses_the_hs256_confusion_attack(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo, rsa_keys: tuple[Any, Path]
) -> None:
    """Guards the classic forgery: an HS256 token whose HMAC key is the server's public key."""
    private, public_path = rsa_keys
    settings = _settings(
        jwt_secret=None,
        jwt_public_key_file=public_path,
        jwt_algorithms="RS256",
        jwt_require_user=False,
    )
    authenticator = _authenticator(sessions, settings)
    good = jwt.encode(_claims(tenant.id), private, algorithm="RS256")
    assert (await authenticator.authenticate(good)).subject == "user:alice"

    forged = _hs256_by_hand(_claims(tenant.id, role="admin"), public_path.read_bytes())
    with pytest.raises(UnauthorizedError, match="algorithm 'HS256' is not accepted"):
        await authenticator.authenticate(forged)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UnauthorizedError, match="signature is invalid"):
        await authenticator.authenticate(jwt.encode(_claims(tenant.id), other, algorithm="RS256"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_algorithms": "none"}, "unsupported"),
        ({"jwt_algorithms": "HS256,RS256"}, "mixes"),
        ({"jwt_audience": None}, "AUDIENCE"),
        ({"jwt_issuer": None}, "ISSUER"),
        ({"jwt_secret": "short"}, "32 characters"),
        ({"jwt_algorithms": "RS256"}, "needs HS"),
    ],
)
def test_unsafe_jwt_configuration_is_refused_at_startup(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        _settings(**overrides)
    assert SECRET not in str(caught.value), "a startup error must not print the secret"


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "Missing Authorization"), ("Basic abc", "must be 'Bearer"), ("Bearer   ", "must be")],
)
def test_bearer_header_problems(header: str | None, message: str) -> None:
    with pytest.raises(UnauthorizedError, match=message):
        bearer_token(header)


async def test_a_tokens_own_platform_scope_grants_nothing(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    """Guards platform admin against self-issued claims: only the allow-list grants it."""
    await UserService(sessions).create(tenant.id, "root", "admin")
    token = mint_token(
        _settings(), subject="root", tenant_id=tenant.id, role="admin", scopes=["platform:admin"]
    )
    plain = await _authenticator(sessions).authenticate(token)
    assert (plain.platform_admin, plain.scopes) == (False, ())
    listed = _settings(platform_admin_subjects="ops,root")
    assert (await _authenticator(sessions, listed).authenticate(token)).platform_admin is True


async def test_an_allow_listed_subject_needs_the_admin_role(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    users = UserService(sessions)
    stored = await users.create(tenant.id, "root", "admin")
    settings = _settings(platform_admin_subjects="root")
    token = mint_token(settings, subject="root", tenant_id=tenant.id, role="admin")
    authenticator = _authenticator(sessions, settings)
    assert (await authenticator.authenticate(token)).platform_admin is True
    await users.update(tenant.id, stored.id, role="user")
    assert (await authenticator.authenticate(token)).platform_admin is False


async def test_platform_admin_comes_from_a_stored_admin_key_with_the_scope(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    keys = ApiKeyService(sessions)
    authenticator = _authenticator(sessions)
    admin = await keys.create(tenant.id, "ops", ["chat", "platform:admin"], role="admin")
    user = await keys.create(tenant.id, "odd", ["chat", "platform:admin"], role="user")
    assert (await authenticator.authenticate(admin.secret)).platform_admin is True
    assert (await authenticator.authenticate(user.secret)).platform_admin is False
