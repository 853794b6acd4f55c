"""Sending and mailbox domains of an org: add, verify over DNS, DKIM keys, records to publish."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import normalize_domain
from orgmail.db.tables import DkimKey, Domain, utcnow
from orgmail.errors import DomainNotFound, DomainNotVerified, DomainTaken, NotFound
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault, SigningKey, dns_record_value, generate_keys


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


async def add_domain(session: AsyncSession, *, org_id: str, name: str, vault: KeyVault) -> Domain:
    """Add a domain (pending) with a verification token and fresh RSA-2048 + Ed25519 DKIM keys."""
    domain_name = normalize_domain(name)
    generated = await asyncio.to_thread(generate_keys)  # RSA key generation takes ~0.1 s of CPU
    try:
        async with session.begin():
            if await find_domain(session, org_id=org_id, name=domain_name) is not None:
                raise DomainTaken(details={"domain": domain_name})
            domain = Domain(
                id=new_id("dom"),
                org_id=org_id,
                name=domain_name,
                status="pending",
                verification_token=secrets.token_hex(16),
            )
            session.add(domain)
            await session.flush()
            for key in generated:
                session.add(
                    DkimKey(
                        domain_id=domain.id,
                        selector=key.selector,
                        algorithm=key.algorithm,
                        private_key_encrypted=vault.encrypt(key.private_der),
                        public_key=key.public_key,
                    )
                )
    except IntegrityError:
        raise DomainTaken(details={"domain": domain_name}) from None
    return domain


async def dkim_keys(session: AsyncSession, *, domain_id: str) -> list[DkimKey]:
    rows = await session.scalars(
        select(DkimKey).where(DkimKey.domain_id == domain_id).order_by(DkimKey.algorithm.desc())
    )
    return list(rows)  # "rsa" before "ed25519": the RSA signature is the primary one


def dns_records(domain: Domain, keys: list[DkimKey]) -> list[dict]:
    """What to publish: verification and DKIM are required; SPF and DMARC are suggestions."""
    records = [
        dict(type="TXT", name=f"_orgmail.{domain.name}", value=f"orgmail-verification={domain.verification_token}",
             purpose="verification", required=True),
    ]
    records += [
        dict(type="TXT", name=f"{key.selector}._domainkey.{domain.name}",
             value=dns_record_value(algorithm=key.algorithm, public_key=key.public_key),
             purpose="dkim", required=True)
        for key in keys
    ]
    records += [
        dict(type="TXT", name=domain.name, value="v=spf1 mx ~all", purpose="spf", required=False),
        dict(type="TXT", name=f"_dmarc.{domain.name}", value="v=DMARC1; p=none; adkim=r; aspf=r",
             purpose="dmarc", required=False),
    ]
    return records


_signing_key_cache: dict[tuple[str, str], SigningKey] = {}


async def load_signing_keys(session: AsyncSession, *, domain_id: str, vault: KeyVault) -> list[SigningKey]:
    """The domain's decrypted signing keys; decrypted once per process, then served from memory."""
    keys = []
    for row in await dkim_keys(session, domain_id=domain_id):
        cache_key = (domain_id, row.selector)
        key = _signing_key_cache.get(cache_key)
        if key is None:
            key = vault.signing_key(
                selector=row.selector, algorithm=row.algorithm, encrypted=row.private_key_encrypted
            )
            _signing_key_cache[cache_key] = key
        keys.append(key)
    return keys


def forget_signing_keys(domain_id: str) -> None:
    for cache_key in [k for k in _signing_key_cache if k[0] == domain_id]:
        del _signing_key_cache[cache_key]
