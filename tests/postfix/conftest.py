"""The feedback loop through a real Postfix, per database backend:

    orgmail serve --SMTP--> private Postfix --transport_maps--> "remote" aiosmtpd servers
         ^                        |
         +--- inbound listener <--+  Postfix's own DSNs to bounces+<msg id>@<bounce domain>

One `orgmail serve` process (SQLite, or a fresh PostgreSQL database on 127.0.0.1:5432) relays through
the private Postfix (tests/postfix/private_postfix.py), which relays on to two loopback SMTP servers: one
that offers no DSN (so Postfix reports "relayed" itself), one that does (so Postfix passes the request
on). Postfix's DSNs for the bounce domain go to orgmail's inbound listener.

Without Postfix (or without root, which its master needs) these tests are skipped, saying why; on CI
(CI=true) that is a failure instead, so they can never be skipped there unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from orgmail.db.session import create_engine
from orgmail.db.tables import InboundReport
from tests.conftest import POSTGRES_ADMIN_URL
from tests.fresh_database import fresh_database
from tests.postfix.private_postfix import PrivatePostfix
from tests.processes import OrgmailServer, free_port, provision_sender
from tests.smtp_relay import SmtpTestRelay

BOUNCE_DOMAIN = "bounces.orgmail.test"
SENDER_DOMAIN = "shop.orgmail.test"
PLAIN_DOMAIN = "plain.remote.test"  # its server offers no DSN
DSN_DOMAIN = "dsn.remote.test"  # its server offers DSN
SMARTHOST_NAME = "smarthost.orgmail.test"
ADMIN_TOKEN = "postfix-admin-token"
INSTALL = "`make system-deps` installs it (Debian: apt-get install postfix swaks)"


def _missing(problem: str) -> None:
    """Skip, saying why; on CI, fail instead."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{problem} (CI=true: the Postfix tests must run on CI, so this fails rather than skips)")
    pytest.skip(problem)


def _program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


@pytest.fixture(scope="session")
def postfix_binary() -> str:
    found = _program("postfix")
    if found is None:
        _missing(f"Debian's postfix is not installed; {INSTALL}")
    if os.geteuid() != 0:
        _missing("the private Postfix is started as root (its master binds ports and runs daemons as postfix)")
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        _missing(f"no `postfix` user on this system (Debian's package creates it); {INSTALL}")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def swaks_binary(postfix_binary) -> str:
    found = _program("swaks")
    if found is None:
        _missing(f"swaks is not installed; {INSTALL}")
    assert found is not None
    return found


@dataclass
class Smarthost:
    """orgmail with Postfix as its smarthost, and the remote servers behind Postfix."""

    backend: str
    database_url: str
    postfix: PrivatePostfix
    server: OrgmailServer
    plain_remote: SmtpTestRelay
    dsn_remote: SmtpTestRelay
    inbound_port: int  # orgmail's inbound listener
    caller: dict[str, str]

    async def call(self, path: str, body: dict) -> dict:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=30) as http:
            response = await http.post(path, json=body, headers=self.caller)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def metric(self, name: str, labels: dict[str, str]) -> float | None:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=30) as http:
            text = (await http.get("/metrics")).text
        selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
        for line in text.splitlines():
            if line.startswith(f"{name}{{{selector}}} "):
                return float(line.rsplit(" ", 1)[1])
        return None

    async def inbound_reports(self) -> list[InboundReport]:
        """Every row the inbound listener stored (read straight from the service's database)."""
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                rows = (await connection.execute(select(InboundReport.__table__))).all()
        finally:
            await engine.dispose()
        return [InboundReport(**row._mapping) for row in rows]

    def diagnosis(self) -> str:
        """What to read when a wait times out: Postfix's queue and both logs."""
        return (
            f"\n--- postqueue -p\n{self.postfix.queue_listing()}"
            f"\n--- Postfix log (tail)\n{self.postfix.log_tail(60)}"
            f"\n--- orgmail serve log (tail)\n{self.server.log()[-3000:]}"
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def smarthost(request, postfix_binary, tmp_path_factory) -> AsyncIterator[Smarthost]:
    backend: str = request.param
    folder = tmp_path_factory.mktemp(f"postfix-{backend}")
    base_url = "sqlite" if backend == "sqlite" else POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://")
    plain_remote, dsn_remote = SmtpTestRelay(), SmtpTestRelay()
    dsn_remote.behaviour.dsn = True
    await plain_remote.start()
    await dsn_remote.start()
    inbound_port = free_port()
    # Not under pytest's temporary root, which only root may enter: Postfix's daemons run as postfix.
    root = Path(tempfile.mkdtemp(prefix=f"orgmail-postfix-{backend}-"))
    postfix = PrivatePostfix(
        binary=postfix_binary,
        root=root,
        port=free_port(),
        mx_port=free_port(),
        hostname=SMARTHOST_NAME,
        transports={
            PLAIN_DOMAIN: f"smtp:[127.0.0.1]:{plain_remote.port}",
            DSN_DOMAIN: f"smtp:[127.0.0.1]:{dsn_remote.port}",
            BOUNCE_DOMAIN: f"smtp:[127.0.0.1]:{inbound_port}",  # Postfix's DSNs, to orgmail's listener
        },
        relay_domains=[BOUNCE_DOMAIN],  # as the bounce domain's MX
        relay_recipients=[
            rf"^bounces\+msg_[0-9a-hjkmnp-tv-z]{{26}}@{BOUNCE_DOMAIN.replace('.', '[.]')}$",
            rf"^(feedback|postmaster)@{BOUNCE_DOMAIN.replace('.', '[.]')}$",
        ],
    )
    try:
        async with fresh_database(base_url, folder, "postfix") as database_url:
            env = {
                "ORGMAIL_DATA_DIR": str(folder / "data"),
                "ORGMAIL_DATABASE_URL": database_url,
                "ORGMAIL_ADMIN_TOKEN": ADMIN_TOKEN,
                "ORGMAIL_RELAY_URL": f"smtp://127.0.0.1:{postfix.port}",
                "ORGMAIL_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
                "ORGMAIL_INBOUND_LISTEN": f"127.0.0.1:{inbound_port}",
                "ORGMAIL_DSN_NOTIFY": "SUCCESS,FAILURE,DELAY",
            }
            server = OrgmailServer(env, folder / "serve.log")
            try:
                # Side by side: orgmail connects to its relay only when it sends.
                started = await asyncio.gather(asyncio.to_thread(postfix.start), server.start(), return_exceptions=True)
                for failure in (outcome for outcome in started if isinstance(outcome, BaseException)):
                    raise failure
                caller = await provision_sender(server, admin_token=ADMIN_TOKEN, domain=SENDER_DOMAIN)
                yield Smarthost(
                    backend=backend,
                    database_url=database_url,
                    postfix=postfix,
                    server=server,
                    plain_remote=plain_remote,
                    dsn_remote=dsn_remote,
                    inbound_port=inbound_port,
                    caller=caller,
                )
            finally:
                server.stop()  # before its database is dropped
    finally:
        postfix.stop()
        if postfix.log_path.exists():  # kept beside the service's log, for a look after a failure
            shutil.copy2(postfix.log_path, folder / "postfix.log")
        shutil.rmtree(root, ignore_errors=True)
        await plain_remote.stop()
        await dsn_remote.stop()
