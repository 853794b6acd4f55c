"""Sending and mailbox domains of an org: add, verify over DNS, DKIM keys, records to publish."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.db.tables import Domain, utcnow
from orgmail.errors import DomainNotFound, DomainNotVerified, NotFound


async def find_domain(session: AsyncSession, *, org_id: str, name: str) -> Domain | None:
    return await session.scalar(select(Domain).where(Domain.org_id == org_id, Domain.name == name))


async def require_verified_domain(session: AsyncSession, *, org_id: str, name: str) -> Domain:
    """The org's verified domain called `name`: 400 if it was never added, 403 if not verified."""
    domain = await find_domain(session, org_id=org_id, name=name)
    if domain is None:
        raise DomainNotFound(details={"domain": name})
    if domain.status != "verified":
        raise DomainNotVerified(details={"domain": name})
    return domain


async def mark_verified(session: AsyncSession, *, org_id: str, domain_id: str) -> Domain:
    """For development only (`orgmail domain mark-verified`): skips the DNS check."""
    async with session.begin():
        domain = await session.scalar(
            select(Domain).where(Domain.org_id == org_id, Domain.id == domain_id)
        )
        if domain is None:
            raise NotFound("No such domain.")
        domain.status = "verified"
        domain.verified_at = domain.verified_at or utcnow()
    return domain
