"""Fixtures that start real parts: SQLite and PostgreSQL databases, the app, API keys.

Every test runs against both databases (the `backend` parameter). A PostgreSQL database is created
for the run and dropped afterwards; the server is the machine's own on 127.0.0.1:5432.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.app import create_app
from orgmail.config import load_settings
from orgmail.core import orgs
from orgmail.db.session import upgrade_database
from orgmail.db.tables import Domain
from orgmail.ids import new_id
from tests.dns_server import AuthoritativeDnsServer

if TYPE_CHECKING:
    from tests.smtp_relay import SmtpTestRelay

# The SMTP relay fixtures (`smtp_relay_server`, `smtp_relay`) and the webhook `receiver` live beside
# the servers they start.
pytest_plugins = ["tests.smtp_relay", "tests.webhook_receiver"]

POSTGRES_ADMIN_URL = os.environ.get("ORGMAIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


async def _postgres_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def database_url(request, tmp_path_factory) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "orgmail.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_database(url)
        yield url
        return
    name = f"orgmail_test_{uuid.uuid4().hex[:12]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def data_dir(database_url, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def dns_server() -> Iterator[AuthoritativeDnsServer]:
    """A real authoritative DNS server on loopback (UDP and TCP); the app resolves against it."""
    server = AuthoritativeDnsServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(database_url, data_dir, dns_server):
    return load_settings(
        {},
        data_dir=data_dir,
        database_url=database_url,
        secret_key=b"test-secret-key",
        admin_token=ADMIN_TOKEN,
        dns_nameservers=(dns_server.nameserver,),
    )


@pytest.fixture(scope="session")
async def app(settings):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orgmail.test") as client:
        yield client


@pytest.fixture
async def session(app) -> AsyncIterator[AsyncSession]:
    async with app.state.session_factory() as db_session:
        yield db_session


@dataclass
class Tenant:
    """An org with its own API key and an HTTP client that calls as that org."""

    org_id: str
    key: str
    http: httpx.AsyncClient

    async def call(self, path: str, body: dict | None = None, **kwargs) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/json",
            **kwargs.pop("headers", {}),
        }
        # json.dumps escapes to ASCII, so even lone surrogates travel as valid JSON (\ud800).
        content = json.dumps(body if body is not None else {})
        return await self.http.post(path, content=content, headers=headers, **kwargs)

    async def ok(self, path: str, body: dict | None = None) -> dict:
        response = await self.call(path, body)
        assert response.status_code == 200, response.text
        return response.json()


async def make_tenant(app, http: httpx.AsyncClient, name: str = "Acme") -> Tenant:
    async with app.state.session_factory() as db_session:
        org = await orgs.create_org(db_session, name=name)
        _key_row, key = await orgs.create_api_key(db_session, org_id=org.id, name="test")
    return Tenant(org_id=org.id, key=key, http=http)


@pytest.fixture
async def tenant(app, http) -> Tenant:
    return await make_tenant(app, http, "Acme")


@pytest.fixture
async def other_tenant(app, http) -> Tenant:
    return await make_tenant(app, http, "Globex")


async def add_domain_row(app, org_id: str, *, verified: bool) -> str:
    """A domain row as `domains.add` + `verify` would leave it (tests of other resources use this)."""
    name = f"d{uuid.uuid4().hex[:10]}.example.org"
    async with app.state.session_factory() as db_session:
        async with db_session.begin():
            db_session.add(
                Domain(
                    id=new_id("dom"),
                    org_id=org_id,
                    name=name,
                    status="verified" if verified else "pending",
                    verification_token=secrets.token_hex(16),
                )
            )
    return name


@pytest.fixture
async def verified_domain(app, tenant) -> str:
    return await add_domain_row(app, tenant.org_id, verified=True)


# --- sending: a second app whose relay is a real SMTP server (tests/smtp_relay.py) -----------------


@pytest.fixture(scope="session")
async def relay_app(settings, smtp_relay_server: SmtpTestRelay):
    """Same database as `app`, but relaying to the loopback SMTP server (short timeout for the tests)."""
    application = create_app(replace(settings, relay_url=smtp_relay_server.url, relay_timeout_seconds=5.0))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def relay_http(relay_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=relay_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orgmail.test") as client:
        yield client


@dataclass
class Sender(Tenant):
    """A tenant with a verified domain that has real DKIM keys, and the DNS records that publish them."""

    domain: str = ""
    dkim_records: dict[str, str] | None = None


async def make_sender(app, http: httpx.AsyncClient, name: str = "Sender Inc") -> Sender:
    from orgmail.core import domains

    tenant = await make_tenant(app, http, name)
    domain_name = f"s{uuid.uuid4().hex[:10]}.example.com"
    async with app.state.session_factory() as db_session:
        domain = await domains.add_domain(db_session, org_id=tenant.org_id, name=domain_name, vault=app.state.vault)
        await domains.mark_verified(db_session, org_id=tenant.org_id, domain_id=domain.id)
        keys = await domains.dkim_keys(db_session, domain_id=domain.id)
        records = domains.dns_records(domain, keys)
    dkim_records = {r["name"]: r["value"] for r in records if r["purpose"] == "dkim"}
    return Sender(org_id=tenant.org_id, key=tenant.key, http=http, domain=domain_name, dkim_records=dkim_records)


@pytest.fixture
async def sender(relay_app, relay_http) -> Sender:
    return await make_sender(relay_app, relay_http)


@pytest.fixture
async def outbox_sender(app, http) -> Sender:
    """A sender on the session's default app, whose relay is the local outbox."""
    return await make_sender(app, http, "Outbox Inc")
