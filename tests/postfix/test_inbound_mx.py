"""Postfix as the MX for the orgs' domains (DESIGN.md §10), per database backend:

    Internet client --SMTP--> private Postfix --LMTP--> Dovecot --> Maildir <--IMAP-- the member
                                  |  (lookups: what `orgmail postfix-config` wrote)
                                  +--> the bounce domain, to a listener standing in for orgmail's

The private Postfix (tests/postfix/private_postfix.py) gets only its own ports, queue and log, plus the
main.cf fragment of `orgmail postfix-config`; Dovecot runs with what `orgmail dovecot-config` wrote; an
`orgmail serve` process makes the changes. Clients talk to Postfix's MX port, which treats every client
as the Internet (no relaying for loopback). One Postfix, one Dovecot and one server per backend.
"""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import smtplib
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from orgmail.ids import new_id
from orgmail.mail import dkim
from tests.conftest import POSTGRES_ADMIN_URL
from tests.fresh_database import fresh_database
from tests.mail.conftest import TEST_LOCAL_CONFIG
from tests.postfix.conftest import _missing
from tests.postfix.private_postfix import PrivatePostfix
from tests.processes import OrgmailServer, free_port, orgmail, provision_sender, wait_for
from tests.smtp_relay import SmtpTestRelay

pytestmark = [pytest.mark.postfix, pytest.mark.dovecot]

DOMAIN = "mx.orgmail.test"
PENDING_DOMAIN = "pending.orgmail.test"
BOUNCE_DOMAIN = "bounces.orgmail.test"
ADMIN_TOKEN = "mx-admin-token"
SMTP_TIMEOUT = 20  # a hang fails the test well inside pytest's own timeout


@dataclass
class Mx:
    backend: str
    root: Path
    database_url: str
    postfix: PrivatePostfix
    server: OrgmailServer
    imap_port: int
    bounce_listener: SmtpTestRelay
    caller: dict[str, str]
    smarthost: SmtpTestRelay  # orgmail's relay: where the member's replies go out
    submission_port: int

    async def call(self, path: str, body: dict) -> dict:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=30) as http:
            response = await http.post(path, json=body, headers=self.caller)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def create_mailbox(self, address: str) -> tuple[dict, str]:
        created = await self.call("/v1/mail/mailboxes/create", {"address": address})
        return created["mailbox"], created["password"]

    async def rcpt(self, address: str) -> tuple[int, str]:
        """RCPT TO on the MX port from an unauthenticated client: Postfix's reply."""

        def talk() -> tuple[int, str]:
            with smtplib.SMTP("127.0.0.1", self.postfix.mx_port, timeout=SMTP_TIMEOUT) as client:
                client.ehlo("client.outside.test")
                assert client.mail("someone@outside.test")[0] == 250
                code, text = client.rcpt(address)
                return code, text.decode()

        return await asyncio.to_thread(talk)

    async def send(self, address: str, subject: str) -> None:
        """A whole message to `address` through the MX port; fails unless Postfix queued it."""
        message = EmailMessage()
        message["From"] = "someone@outside.test"
        message["To"] = address
        message["Subject"] = subject
        message.set_content("Hello from the Internet.\n")

        def talk() -> None:
            with smtplib.SMTP("127.0.0.1", self.postfix.mx_port, timeout=SMTP_TIMEOUT) as client:
                assert client.send_message(message) == {}

        await asyncio.to_thread(talk)

    async def inbox(self, address: str, password: str) -> list[str]:
        """The subjects in the mailbox's INBOX, read over IMAP."""

        def read() -> list[str]:
            client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
            try:
                client.login(address, password)
                assert client.select("INBOX")[0] == "OK"
                _, (ids,) = client.search(None, "ALL")
                subjects = []
                for number in ids.split():
                    _, parts = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                    subjects.append(parts[0][1].decode().strip().removeprefix("Subject: "))
                return subjects
            finally:
                client.logout()

        return await asyncio.to_thread(read)

    async def wait_for_inbox(self, address: str, password: str, subjects: list[str], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while (found := await self.inbox(address, password)) != subjects:
            if time.monotonic() > deadline:
                raise AssertionError(f"INBOX of {address}: {found}, not {subjects}{self.diagnosis()}")
            await asyncio.sleep(0.1)

    def diagnosis(self) -> str:
        return (
            f"\n--- postqueue -p\n{self.postfix.queue_listing()}"
            f"\n--- Postfix log (tail)\n{self.postfix.log_tail(40)}"
            f"\n--- Dovecot log (tail)\n{(self.root / 'dovecot.log').read_text(errors='replace')[-2000:]}"
        )


def _dovecot_binary() -> str:
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/bin")
    if found is None:
        _missing("Dovecot is not installed; `make system-deps` installs it")
    assert found is not None
    return found


def _wait_for_imap(port: int, process: subprocess.Popen, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if conn.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"Dovecot did not answer IMAP: {log.read_text()}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def mx(request, postfix_binary) -> AsyncIterator[Mx]:
    backend: str = request.param
    dovecot_binary = _dovecot_binary()
    # Not under pytest's temporary root, which only root may enter: Postfix and Dovecot's mail
    # processes run as their own users and must reach the copy, the tables and the Maildirs.
    root = Path(tempfile.mkdtemp(prefix=f"orgmail-mx-{backend}-"))
    root.chmod(0o755)
    base_url = "sqlite" if backend == "sqlite" else POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://")
    bounce_listener = SmtpTestRelay()  # stands in for orgmail's inbound listener: it records what it gets
    await bounce_listener.start()
    smarthost = SmtpTestRelay()
    await smarthost.start()
    imap_port, lmtp_port, submission_port = free_port(), free_port(), free_port()
    dovecot: subprocess.Popen | None = None
    postfix: PrivatePostfix | None = None
    try:
        async with fresh_database(base_url, root, "mx") as database_url:
            env = {
                "ORGMAIL_DATA_DIR": str(root / "data"),
                "ORGMAIL_DATABASE_URL": database_url,
                "ORGMAIL_ADMIN_TOKEN": ADMIN_TOKEN,
                "ORGMAIL_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
                "ORGMAIL_INBOUND_LISTEN": f"127.0.0.1:{free_port()}",
                "ORGMAIL_DOVECOT_CONFIG": str(root / "dovecot" / "dovecot.conf"),
                "ORGMAIL_RELAY_URL": smarthost.url,
                "ORGMAIL_SUBMISSION_LISTEN": f"127.0.0.1:{submission_port}",  # loopback: AUTH without TLS
            }
            written = orgmail(
                "dovecot-config", "--out", str(root / "dovecot"),
                "--imap-port", str(imap_port), "--lmtp-port", str(lmtp_port), env=env,
            )  # fmt: skip
            assert written.returncode == 0, written.stderr
            (root / "dovecot" / "local.conf").write_text(TEST_LOCAL_CONFIG)
            written = orgmail(
                "postfix-config", "--out", str(root / "tables"),
                "--lmtp", f"127.0.0.1:{lmtp_port}", "--inbound", f"127.0.0.1:{bounce_listener.port}", env=env,
            )  # fmt: skip
            assert written.returncode == 0, written.stderr
            postfix = PrivatePostfix(
                binary=postfix_binary,
                root=root / "postfix",
                port=free_port(),
                mx_port=free_port(),
                hostname="mx.orgmail.test",
                transports={},
                extra_main_cf=(root / "tables" / "main.cf").read_text(),
            )
            server = OrgmailServer(env, root / "serve.log")
            with (root / "dovecot.log").open("wb") as log:
                dovecot = subprocess.Popen(
                    [dovecot_binary, "-F", "-c", str(root / "dovecot" / "dovecot.conf")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                started = await asyncio.gather(
                    asyncio.to_thread(postfix.start),
                    asyncio.to_thread(_wait_for_imap, imap_port, dovecot, root / "dovecot.log"),
                    server.start(),
                    return_exceptions=True,
                )
                for failure in (outcome for outcome in started if isinstance(outcome, BaseException)):
                    raise failure
                caller = await provision_sender(server, admin_token=ADMIN_TOKEN, domain=DOMAIN)
                mx = Mx(
                    backend, root, database_url, postfix, server, imap_port, bounce_listener, caller,
                    smarthost, submission_port,
                )  # fmt: skip
                await mx.call("/v1/mail/domains/add", {"name": PENDING_DOMAIN})  # never verified
                yield mx
            finally:
                server.stop()  # before its database is dropped
    finally:
        if postfix is not None:
            postfix.stop()
        if dovecot is not None:
            dovecot.terminate()
            dovecot.wait(15)
        await bounce_listener.stop()
        await smarthost.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_mail_to_a_live_mailbox_lands_in_its_inbox(mx):
    mailbox, password = await mx.create_mailbox(f"ann@{DOMAIN}")
    await mx.send(mailbox["address"], "From the Internet")
    await mx.wait_for_inbox(mailbox["address"], password, ["From the Internet"])


async def test_unknown_address_and_pending_domain_are_refused_at_rcpt(mx):
    await mx.create_mailbox(f"bob@{DOMAIN}")
    assert (await mx.rcpt(f"bob@{DOMAIN}"))[0] == 250
    code, text = await mx.rcpt(f"nobody@{DOMAIN}")
    assert code == 550 and "5.1.1" in text, text
    # A mailbox of ours on a domain still pending is not ours to take mail for yet.
    code, text = await mx.rcpt(f"anyone@{PENDING_DOMAIN}")
    assert 500 <= code < 600, text


async def test_deleted_mailbox_is_refused_at_once_and_recreated_one_starts_empty(mx):
    first, first_password = await mx.create_mailbox(f"cat@{DOMAIN}")
    await mx.send(first["address"], "For the first cat")
    await mx.wait_for_inbox(first["address"], first_password, ["For the first cat"])

    await mx.call("/v1/mail/mailboxes/delete", {"id": first["id"]})
    code, text = await mx.rcpt(first["address"])  # no wait: the very next RCPT
    assert code == 550 and "5.1.1" in text, text

    second, second_password = await mx.create_mailbox(f"cat@{DOMAIN}")
    assert (await mx.rcpt(second["address"]))[0] == 250
    await mx.send(second["address"], "For the second cat")
    await mx.wait_for_inbox(second["address"], second_password, ["For the second cat"])


async def test_bounce_domain_goes_to_the_inbound_listener_and_nothing_else_is_taken(mx):
    address = f"bounces+{new_id('msg')}@{BOUNCE_DOMAIN}"
    await mx.send(address, "A delivery status notification")
    await wait_for(
        lambda: any(address.lower() in [r.lower() for r in got.rcpt_tos] for got in mx.bounce_listener.received),
        timeout=20,
        what=f"the listener to get mail for {address}",
    )
    for taken in (f"feedback@{BOUNCE_DOMAIN}", f"postmaster@{BOUNCE_DOMAIN}"):
        assert (await mx.rcpt(taken))[0] == 250, taken
    for refused in (f"random@{BOUNCE_DOMAIN}", f"bounces+nonsense@{BOUNCE_DOMAIN}"):
        code, text = await mx.rcpt(refused)
        assert code == 550, (refused, text)


async def test_orgmail_stopped_live_mailbox_is_not_refused(mx):
    mailbox, password = await mx.create_mailbox(f"dan@{DOMAIN}")
    process = mx.server.process
    assert process is not None
    process.terminate()  # a clean stop, as an operator's
    process.wait(30)
    try:
        code, text = await mx.rcpt(mailbox["address"])
        assert code == 250 or 400 <= code < 500, text
        if code == 250:
            await mx.send(mailbox["address"], "While orgmail was stopped")
        if mx.backend == "sqlite":  # as if a crash had cut off a refresh: the start rebuilds the copy
            with sqlite3.connect(mx.root / "mx-postfix.sqlite") as copy:
                copy.execute("DELETE FROM mailboxes")
            assert (await mx.rcpt(mailbox["address"]))[0] == 550
    finally:
        await mx.server.start()
    assert (await mx.rcpt(mailbox["address"]))[0] == 250
    if code == 250:
        await mx.wait_for_inbox(mailbox["address"], password, ["While orgmail was stopped"])


async def test_a_member_reads_internet_mail_over_imap_and_replies_through_submission_signed(mx):
    """The round trip a member sees: an Internet sender -> Postfix -> Dovecot -> the member's IMAP
    client -> a reply through orgmail's submission -> signed mail at the relay, both signatures good."""
    mailbox, password = await mx.create_mailbox(f"dee@{DOMAIN}")
    await mx.send(mailbox["address"], "Question from outside")
    await mx.wait_for_inbox(mailbox["address"], password, ["Question from outside"])

    def read_and_reply() -> bytes:
        client = imaplib.IMAP4("127.0.0.1", mx.imap_port, timeout=10)
        try:
            client.login(mailbox["address"], password)
            client.select("INBOX")
            _, (ids,) = client.search(None, "ALL")
            _, parts = client.fetch(ids.split()[-1], "(RFC822)")
        finally:
            client.logout()
        original = message_from_bytes(parts[0][1])
        reply = EmailMessage()
        reply["From"] = mailbox["address"]
        reply["To"] = original["From"]
        reply["Subject"] = "Re: " + original["Subject"]
        reply["In-Reply-To"] = original["Message-ID"]
        reply.set_content("Here is the answer.\n")
        with smtplib.SMTP("127.0.0.1", mx.submission_port, timeout=SMTP_TIMEOUT) as submission:
            submission.login(mailbox["address"], password)  # the mailbox's own password
            refused = submission.send_message(reply)
            assert refused == {}
        return original["Message-ID"].encode()

    mx.smarthost.reset()
    in_reply_to = await asyncio.to_thread(read_and_reply)
    [relayed] = mx.smarthost.received
    assert relayed.rcpt_tos == ["someone@outside.test"]
    assert relayed.mail_from.startswith("bounces+msg_") and relayed.mail_from.endswith(f"@{BOUNCE_DOMAIN}")
    assert b"In-Reply-To: " + in_reply_to in relayed.content and b"Bcc:" not in relayed.content
    domain = next(d for d in (await mx.call("/v1/mail/domains/list", {}))["domains"] if d["name"] == DOMAIN)
    published = (await mx.call("/v1/mail/domains/get", {"id": domain["id"]}))["records"]
    records = {r["name"]: r["value"] for r in published if r["purpose"] == "dkim"}
    assert dkim.verify(relayed.content, txt_records=records) == [True, True]
