"""Sending and mailbox domains of an org: add, verify over DNS, DKIM keys, records to publish.

Choices a user will notice (also in docs/domains.md):
- A verified domain stays verified when a later `verify` fails (as Postmark does): a DNS hiccup or a
  provider migration must not stop mail that is already flowing; the checks say what is wrong.
- A domain with mailboxes cannot be deleted (409 `domain_in_use`): deleting it would delete people's
  mail. The send log keeps its rows; they name the domain, they do not point at it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import dkim.util
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import normalize_domain
from orgmail.core.pages import Page, newest_first
from orgmail.db import postfix_copy
from orgmail.db.tables import DkimKey, Domain, Mailbox, utcnow
from orgmail.errors import (
    DnsUnavailable,
    DomainInUse,
    DomainNotFound,
    DomainNotVerified,
    DomainTaken,
    InvalidRequest,
    NotFound,
)
from orgmail.ids import new_id
from orgmail.mail.dkim import KeyVault, SigningKey, dns_record_value, generate_keys
from orgmail.mail.dns import DnsLookupFailed, TxtResolver


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
        domain = await _owned_domain(session, org_id=org_id, domain_id=domain_id)
        domain.status = "verified"
        domain.verified_at = domain.verified_at or utcnow()
    await postfix_copy.refresh(session.get_bind().engine.url)
    return domain


async def add_domain(session: AsyncSession, *, org_id: str, name: str, vault: KeyVault) -> Domain:
    """Add a domain (pending) with a verification token and fresh RSA-2048 + Ed25519 DKIM keys."""
    domain_name = normalize_domain(name)
    generated = await asyncio.to_thread(generate_keys)  # RSA key generation takes ~0.1 s of CPU
    longest = max(len(f"{key.selector}._domainkey.{domain_name}") for key in generated)
    if longest > 253:  # RFC 1035: the DKIM record names must fit in DNS too
        raise InvalidRequest(
            f"The domain name is too long for its DKIM records ({longest} > 253 characters).",
            details={"fields": [{"path": "name", "message": "too long for DKIM record names"}]},
        )
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
        dict(
            type="TXT",
            name=f"_orgmail.{domain.name}",
            value=f"orgmail-verification={domain.verification_token}",
            purpose="verification",
            required=True,
        ),
    ]
    records += [
        dict(
            type="TXT",
            name=f"{key.selector}._domainkey.{domain.name}",
            value=dns_record_value(algorithm=key.algorithm, public_key=key.public_key),
            purpose="dkim",
            required=True,
        )
        for key in keys
    ]
    records += [
        dict(type="TXT", name=domain.name, value="v=spf1 mx ~all", purpose="spf", required=False),
        dict(
            type="TXT",
            name=f"_dmarc.{domain.name}",
            value="v=DMARC1; p=none; adkim=r; aspf=r",
            purpose="dmarc",
            required=False,
        ),
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
            key = vault.signing_key(selector=row.selector, algorithm=row.algorithm, encrypted=row.private_key_encrypted)
            _signing_key_cache[cache_key] = key
        keys.append(key)
    return keys


def forget_signing_keys(domain_id: str) -> None:
    for cache_key in [k for k in _signing_key_cache if k[0] == domain_id]:
        del _signing_key_cache[cache_key]


# --- reading, verifying and deleting (the /v1/mail/domains API) -----------------------------------


@dataclass(frozen=True)
class DomainView:
    """A domain as its org sees it: the row's public fields, its DKIM selectors, what to publish."""

    id: str
    org_id: str
    name: str
    status: str
    dkim_selectors: list[str]
    verified_at: datetime | None
    created_at: datetime
    records: list[dict]


@dataclass(frozen=True)
class DnsCheck:
    """One required record: what we expect at `name`, every TXT value DNS gave, and the verdict."""

    name: str
    expected: str
    found: list[str]
    ok: bool


@dataclass(frozen=True)
class DomainVerification:
    domain: DomainView
    checks: list[DnsCheck]


def _view(domain: Domain, keys: list[DkimKey]) -> DomainView:
    return DomainView(
        id=domain.id,
        org_id=domain.org_id,
        name=domain.name,
        status=domain.status,
        dkim_selectors=[key.selector for key in keys],
        verified_at=domain.verified_at,
        created_at=domain.created_at,
        records=dns_records(domain, keys),
    )


async def _owned_domain(session: AsyncSession, *, org_id: str, domain_id: str) -> Domain:
    """The org's domain; another org's id is "no such domain", exactly like an unknown id."""
    domain = await session.scalar(select(Domain).where(Domain.org_id == org_id, Domain.id == domain_id))
    if domain is None:
        raise NotFound("No such domain.", details={"id": domain_id})
    return domain


async def get_domain(session: AsyncSession, *, org_id: str, domain_id: str) -> DomainView:
    domain = await _owned_domain(session, org_id=org_id, domain_id=domain_id)
    return _view(domain, await dkim_keys(session, domain_id=domain.id))


async def list_domains(
    session: AsyncSession, *, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[DomainView]:
    page = await newest_first(
        session, select(Domain).where(Domain.org_id == org_id), Domain.id, limit=limit, cursor=cursor
    )
    keys_by_domain: dict[str, list[DkimKey]] = {domain.id: [] for domain in page.items}
    if keys_by_domain:
        rows = await session.scalars(
            select(DkimKey)
            .where(DkimKey.domain_id.in_(keys_by_domain))
            .order_by(DkimKey.algorithm.desc(), DkimKey.selector)
        )
        for key in rows:
            keys_by_domain[key.domain_id].append(key)
    return Page([_view(domain, keys_by_domain[domain.id]) for domain in page.items], page.next_cursor)


async def verify_domain(
    session: AsyncSession, *, org_id: str, domain_id: str, resolver: TxtResolver
) -> DomainVerification:
    """Look the required records up and mark the domain verified if every one of them matches.

    Raises `DnsUnavailable` (nothing changes) when DNS cannot answer. A failed check never demotes a
    verified domain (see the module docstring).
    """
    async with session.begin():
        domain = await _owned_domain(session, org_id=org_id, domain_id=domain_id)
        keys = await dkim_keys(session, domain_id=domain.id)
    # No transaction stays open while DNS answers (a slow nameserver must not hold a connection).
    required = [record for record in dns_records(domain, keys) if record["required"]]
    try:
        answers = await asyncio.gather(*(resolver.lookup_txt(record["name"]) for record in required))
    except DnsLookupFailed as exc:
        details = {"name": exc.name} if exc.name else None
        raise DnsUnavailable(str(exc), details=details) from None
    checks = [
        DnsCheck(name=record["name"], expected=record["value"], found=found, ok=_record_published(record, found))
        for record, found in zip(required, answers, strict=True)
    ]
    if all(check.ok for check in checks):
        async with session.begin():
            domain = await _owned_domain(session, org_id=org_id, domain_id=domain_id)  # deleted meanwhile?
            if domain.status != "verified":
                domain.status = "verified"
                domain.verified_at = utcnow()
        await postfix_copy.refresh(session.get_bind().engine.url)  # Postfix takes mail for the domain from now on
    return DomainVerification(domain=_view(domain, keys), checks=checks)


def _record_published(record: dict, found: list[str]) -> bool:
    if record["purpose"] == "dkim":
        # Receivers pick any one TXT record at a selector (RFC 6376 §3.6.2.2), so a stale second
        # record would break signatures at random: every record there has to carry our key.
        return bool(found) and all(_same_dkim_key(value, record["value"]) for value in found)
    # Other services may keep their own TXT records beside ours; ours has to be among them.
    return any(value.strip() == record["value"] for value in found)


_WHITESPACE = re.compile(rb"\s+")


def _same_dkim_key(published: str, expected: str) -> bool:
    """The published DKIM record carries our key, however its tags are spaced or ordered.

    Parsed as a receiver does (dkimpy's tag-list parser): `v=` is optional but must be DKIM1, `k=`
    defaults to rsa, `p=` may contain whitespace (RFC 6376 §3.6.1), `h=` must allow sha256.
    """
    try:
        got = dkim.util.parse_tag_value(published.encode())
        want = dkim.util.parse_tag_value(expected.encode())
    except dkim.util.InvalidTagValueList:
        return False
    if got.get(b"v", b"DKIM1") != b"DKIM1" or got.get(b"k", b"rsa") != want[b"k"]:
        return False
    if b"h" in got and b"sha256" not in [name.strip() for name in got[b"h"].split(b":")]:
        return False
    return _WHITESPACE.sub(b"", got.get(b"p", b"")) == want[b"p"]


async def delete_domain(session: AsyncSession, *, org_id: str, domain_id: str) -> None:
    """Delete the domain and its DKIM keys; refused (409) while mailboxes live on it."""
    domain_name = None
    try:
        async with session.begin():
            domain = await _owned_domain(session, org_id=org_id, domain_id=domain_id)
            domain_name = domain.name
            mailboxes = await session.scalar(
                select(func.count()).select_from(Mailbox).where(Mailbox.domain_id == domain.id)
            )
            if mailboxes:
                raise DomainInUse(details={"domain": domain_name, "mailboxes": mailboxes})
            await session.execute(delete(DkimKey).where(DkimKey.domain_id == domain.id))
            await session.delete(domain)
    except IntegrityError:
        # A mailbox was created on the domain meanwhile; the foreign key refused the delete.
        raise DomainInUse(details={"domain": domain_name}) from None
    await postfix_copy.refresh(session.get_bind().engine.url)
    forget_signing_keys(domain_id)
