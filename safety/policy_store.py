"""Tenants' own safety policies, set by their admins and read by every node.

A stored policy replaces the policy file's entry for its tenant (the file stays the
operator's default). Each row carries when it changed, so a node polls the small
``(tenant, updated_at)`` list and reloads only what changed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from kernel.errors import InvalidInputError
from kernel.orm import utcnow
from safety.models import TenantPolicyRow
from safety.policy import Policy

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["MAX_POLICY_BYTES", "InvalidPolicyError", "PolicyStore", "parse_policy"]

MAX_POLICY_BYTES = 64 * 1024
"""Largest policy document a tenant may store (blocked topics' examples included)."""


class InvalidPolicyError(InvalidInputError):
    """A policy document that is not JSON, too large, or names unknown things."""


def parse_policy(document: Mapping[str, Any] | str) -> tuple[dict[str, Any], Policy]:
    """A policy document (a JSON text or its object) checked, and the policy it makes.

    Raises:
        InvalidPolicyError: It is not a JSON object, is too large, or names an
            unknown filter, category or action, or holds a value of the wrong type.
    """
    if isinstance(document, str):
        if len(document.encode()) > MAX_POLICY_BYTES:
            raise InvalidPolicyError(f"A policy is at most {MAX_POLICY_BYTES // 1024} KiB.")
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise InvalidPolicyError(f"The policy is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidPolicyError("A policy is a JSON object.")
    if len(json.dumps(document).encode()) > MAX_POLICY_BYTES:
        raise InvalidPolicyError(f"A policy is at most {MAX_POLICY_BYTES // 1024} KiB.")
    try:
        policy = Policy.from_mapping(document)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidPolicyError(f"The policy is not valid: {exc}") from None
    return policy.to_mapping(), policy


class PolicyStore:
    """Read and write tenants' stored policies."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def put(self, tenant_id: str, document: Mapping[str, Any] | str, by: str) -> Policy:
        """Store a tenant's policy (checked first; nothing is stored when it is bad).

        Raises:
            InvalidPolicyError: See ``parse_policy``.
        """
        normalised, policy = parse_policy(document)
        async with self._sessions.begin() as session:
            row = await session.get(TenantPolicyRow, tenant_id)
            if row is None:
                session.add(
                    TenantPolicyRow(tenant_id=tenant_id, document=normalised, updated_by=by)
                )
            else:
                row.document = normalised
                row.updated_by = by[:300]
                row.updated_at = utcnow()
        return policy

    async def delete(self, tenant_id: str) -> None:
        """Drop a tenant's policy: the policy file's applies again."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(TenantPolicyRow).where(TenantPolicyRow.tenant_id == tenant_id)
            )

    async def get(self, tenant_id: str) -> tuple[dict[str, Any], str, datetime] | None:
        """A tenant's stored document, who stored it and when; ``None`` without one."""
        async with self._sessions() as session:
            row = await session.get(TenantPolicyRow, tenant_id)
        return None if row is None else (dict(row.document), row.updated_by, row.updated_at)

    async def versions(self) -> dict[str, datetime]:
        """When each stored policy last changed, by tenant (what a node polls)."""
        query = select(TenantPolicyRow.tenant_id, TenantPolicyRow.updated_at)
        async with self._sessions() as session:
            return dict((await session.execute(query)).all())

    async def policies(self, tenant_ids: Iterable[str]) -> dict[str, Policy]:
        """The stored policies of these tenants (those that have one)."""
        ids = list(tenant_ids)
        if not ids:
            return {}
        query = select(TenantPolicyRow).where(TenantPolicyRow.tenant_id.in_(ids))
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return {row.tenant_id: Policy.from_mapping(row.document) for row in rows}
