"""JWT verification (PyJWT) and, for operators and tests, minting with the HS* secret.

What is checked, and why each failure is a 401 with its own message: the header's
``alg`` must be one of the pinned algorithms (``none`` never is); the signature
must verify with the configured key; ``exp``, ``aud``, ``iss`` and ``sub`` must be
present, ``aud`` and ``iss`` equal to the configured values and ``exp`` in the
future (within a small leeway); the tenant claim must be present and the role
claim, when present, a known role.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from app.core.errors import UnauthorizedError
from conversation import PRINCIPAL_ROLES, PrincipalRole

if TYPE_CHECKING:
    from collections.abc import Iterable

    from app.auth.settings import AuthSettings

MAX_TOKEN_CHARS = 8192
"""Longer bearer tokens are refused before any parsing."""


@dataclass(frozen=True, slots=True)
class JwtClaims:
    """The claims of a verified token that ragserve uses."""

    subject: str
    tenant_id: str
    role: PrincipalRole
    scopes: tuple[str, ...] | None
    """The scope claim's scopes; ``None`` when the token has no scope claim."""
    expires_at: float
    """The ``exp`` claim, Unix seconds."""


_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf or iat in the future)."),
    (jwt.InvalidAudienceError, "The token's audience (aud) is not accepted here."),
    (jwt.InvalidIssuerError, "The token's issuer (iss) is not accepted here."),
    (jwt.InvalidAlgorithmError, "The token's signing algorithm is not accepted here."),
    (jwt.InvalidSignatureError, "The token's signature is invalid."),
    (jwt.InvalidKeyError, "The token's signature is invalid."),
    (jwt.DecodeError, "The token is malformed."),
)


class JwtVerifier:
    """Verifies tokens against one deployment's pinned algorithms, key, audience and issuer."""

    def __init__(self, settings: AuthSettings) -> None:
        if not settings.jwt_enabled or settings.jwt_key is None:
            raise ValueError("JWTs are not configured (no secret and no public key)")
        self._settings = settings
        self._key = settings.jwt_key
        self._algorithms = list(settings.jwt_algorithms)

    def verify(self, token: str) -> JwtClaims:
        """Returns the claims of a valid token.

        Raises:
            UnauthorizedError: Anything wrong with the token, with a message that
                says what (never the token itself).
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise UnauthorizedError("The token is too long.")
        try:
            # NOTE: checked before decode so the message names the algorithm;
            # PyJWT checks it again against the same list.
            alg = jwt.get_unverified_header(token).get("alg")
            if alg not in self._algorithms:
                raise UnauthorizedError(
                    f"The token's algorithm {alg!r} is not accepted here "
                    f"(accepted: {', '.join(self._algorithms)})."
                )
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_s,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthorizedError(f"The token lacks the required {exc.claim!r} claim.") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(_message(exc)) from exc
        return self._claims(claims)

    def _claims(self, claims: dict[str, Any]) -> JwtClaims:
        settings = self._settings
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
            raise UnauthorizedError("The token's sub claim must be a non-empty string.")
        tenant_id = claims.get(settings.jwt_tenant_claim)
        if not isinstance(tenant_id, str) or not tenant_id:
            raise UnauthorizedError(
                f"The token lacks the tenant claim {settings.jwt_tenant_claim!r}."
            )
        raw_role = claims.get(settings.jwt_role_claim, "user")
        role = next((known for known in PRINCIPAL_ROLES if known == raw_role), None)
        if role is None:
            raise UnauthorizedError(
                f"The token's {settings.jwt_role_claim!r} claim is not one of "
                f"{', '.join(PRINCIPAL_ROLES)}."
            )
        return JwtClaims(
            subject=subject,
            tenant_id=tenant_id,
            role=role,
            scopes=_scopes(claims.get(settings.jwt_scopes_claim), settings.jwt_scopes_claim),
            expires_at=float(claims["exp"]),
        )


def _scopes(raw: object, claim: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return tuple(raw.split())
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise UnauthorizedError(f"The token's {claim!r} claim must be a string or a list of strings.")


def _message(exc: jwt.PyJWTError) -> str:
    for error_type, message in _ERRORS:
        if isinstance(exc, error_type):
            return message
    return "The token is invalid."


def mint_token(
    settings: AuthSettings,
    *,
    subject: str,
    tenant_id: str,
    role: PrincipalRole = "user",
    scopes: Iterable[str] = (),
    ttl_s: float = 3600.0,
) -> str:
    """Signs a token this deployment accepts, with its HS* secret.

    For operators and tests; real deployments usually take tokens from their
    identity provider.

    Raises:
        ValueError: No HS* secret is configured (a public key cannot sign).
    """
    if settings.jwt_secret is None:
        raise ValueError("minting needs RAGSERVE_AUTH_JWT_SECRET (a public key cannot sign)")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + int(ttl_s),
        settings.jwt_tenant_claim: tenant_id,
        settings.jwt_role_claim: role,
    }
    scope_list = list(scopes)
    if scope_list:
        claims[settings.jwt_scopes_claim] = " ".join(scope_list)
    return jwt.encode(
        claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithms[0]
    )
