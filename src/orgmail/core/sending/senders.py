"""The sender's domain: the org's verified domain a From address is on, with its DKIM keys.

A busy sender sends from one domain all day, so its look-up (and the keys' decryption) is cached for a
few seconds in each process.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import Address
from orgmail.core.domains import load_signing_keys, require_verified_domain
from orgmail.mail.dkim import KeyVault, SigningKey


@dataclass(frozen=True)
class Sender:
    """The org's verified domain a From address is on, with its decrypted DKIM keys."""

    domain_id: str
    domain: str
    keys: tuple[SigningKey, ...]


class SenderCache:
    """Verified sender domains seen recently, so a busy sender costs no database round trip for them.

    An entry lives `ttl_seconds`: deleting a domain (or changing its keys) takes effect for sends
    within that time, in every process. Only verified domains are kept; a missing or unverified
    domain always goes to the database.
    """

    def __init__(self, *, ttl_seconds: float = 3.0, max_entries: int = 10_000):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[Sender, float]] = {}  # (org, domain) -> (sender, expires at)

    def get(self, org_id: str, domain: str) -> Sender | None:
        entry = self._entries.get((org_id, domain))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def remember(self, org_id: str, domain: str, sender: Sender) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[(org_id, domain)] = (sender, time.monotonic() + self.ttl_seconds)


async def resolve_sender_domain(
    session: AsyncSession, *, org_id: str, sender: Address, vault: KeyVault, cache: SenderCache
) -> Sender:
    """The org's verified domain the From address is on, with its keys: 400 if never added, 403 if
    not verified. Served from `cache` for a few seconds after a look-up."""
    cached = cache.get(org_id, sender.domain)
    if cached is not None:
        return cached
    async with _autocommit(session):
        domain = await require_verified_domain(session, org_id=org_id, name=sender.domain)
        keys = await load_signing_keys(session, domain_id=domain.id, vault=vault)
    found = Sender(domain_id=domain.id, domain=domain.name, keys=tuple(keys))
    cache.remember(org_id, sender.domain, found)
    return found


@asynccontextmanager
async def _autocommit(session: AsyncSession) -> AsyncIterator[None]:
    """Reads that need no snapshot together, without BEGIN and COMMIT (two round trips)."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    except BaseException:
        await session.rollback()
        raise
    await session.commit()  # releases the connection; in autocommit nothing is sent
