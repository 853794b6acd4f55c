"""What routes may ask for: a database session, the caller, the mail store, the settings, DNS."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.config import Settings
from orgmail.core.orgs import is_admin_token, org_for_key, require_org
from orgmail.core.sending import SendPipeline
from orgmail.errors import ForbiddenOrg, InvalidRequest, Unauthorized
from orgmail.mail.dkim import KeyVault
from orgmail.mail.dns import TxtResolver
from orgmail.mail.store import MailStore


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.session_factory() as session:
        yield session


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> MailStore:
    return request.app.state.store


async def get_vault(request: Request) -> KeyVault:
    return request.app.state.vault


async def get_dns_resolver(request: Request) -> TxtResolver:
    return request.app.state.dns_resolver


DbSession = Annotated[AsyncSession, Depends(get_session)]
Vault = Annotated[KeyVault, Depends(get_vault)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Store = Annotated[MailStore, Depends(get_store)]
DnsResolver = Annotated[TxtResolver, Depends(get_dns_resolver)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an org's API key, or the platform's admin token (any org, named by orgId)."""

    org_id: str | None
    is_admin: bool = False


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    return token.strip()


class ApiKeyCache:
    """API keys checked recently, so a busy client costs no database round trip per call.

    Keyed by a hash of the whole key (secret included), never the key itself. An entry lives
    `ttl_seconds`; revoking a key drops it here at once, and from other processes' caches within
    the TTL. Failures are never cached: a wrong key always goes to the database.
    """

    def __init__(self, *, ttl_seconds: float = 5.0, max_entries: int = 10_000):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[str, float]] = {}  # digest -> (org id, expires at)

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def org_for(self, token: str) -> str | None:
        entry = self._entries.get(self._digest(token))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def remember(self, token: str, org_id: str) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[self._digest(token)] = (org_id, time.monotonic() + self.ttl_seconds)

    def forget_all(self) -> None:
        self._entries.clear()


async def authenticate(request: Request, session: DbSession, settings: AppSettings) -> Principal:
    token = _bearer(request)
    if is_admin_token(token, settings.admin_token):
        return Principal(org_id=None, is_admin=True)
    cache: ApiKeyCache = request.app.state.api_key_cache
    org_id = cache.org_for(token)
    if org_id is None:
        org_id = await org_for_key(session, token)
        await session.rollback()  # end the read transaction; core opens its own
        cache.remember(token, org_id)
    return Principal(org_id=org_id)


async def authenticate_admin(request: Request, settings: AppSettings) -> Principal:
    token = _bearer(request)
    if not is_admin_token(token, settings.admin_token):
        raise Unauthorized("The admin token is required.")
    return Principal(org_id=None, is_admin=True)


Caller = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(authenticate_admin)]


@dataclass(frozen=True)
class SendContext:
    """Everything `messages/send` needs, resolved as one dependency (`SendDeps`).

    FastAPI's resolution of a dependency costs more per request than the work most of these do
    (reading `app.state`), and send is the hot path: one dependency here instead of several.
    The caller is authenticated exactly as `Caller` does it.
    """

    caller: Principal
    session: AsyncSession
    pipeline: SendPipeline


async def get_send_context(request: Request) -> AsyncIterator[SendContext]:
    state = request.app.state
    async with state.session_factory() as session:
        caller = await authenticate(request, session, state.settings)
        yield SendContext(caller, session, state.send_pipeline)


SendDeps = Annotated[SendContext, Depends(get_send_context)]


async def org_scope(session: AsyncSession, caller: Principal, requested_org_id: str | None) -> str:
    """The org a call acts on: the key's own; another org is 403, never silently allowed."""
    if caller.is_admin:
        if requested_org_id is None:
            raise InvalidRequest(
                "orgId is required when calling with the admin token.",
                details={"fields": [{"path": "orgId", "message": "required with the admin token"}]},
            )
        await require_org(session, requested_org_id)
        await session.rollback()
        return requested_org_id
    if requested_org_id is not None and requested_org_id != caller.org_id:
        raise ForbiddenOrg()
    assert caller.org_id is not None
    return caller.org_id
