"""Submission driven by a client orgmail did not write: swaks (Debian), with STARTTLS and implicit TLS,
AUTH PLAIN and LOGIN, attachments and Bcc; what the loopback relay received verifies with dkimpy."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import shutil
import uuid
from pathlib import Path

import pytest

from orgmail.mail import dkim
from tests.conftest import Sender
from tests.submission.conftest import row

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")


async def swaks(port: int, sender: Sender, *args: str, to: str = "bob@example.net") -> str:
    """One swaks run (its whole transcript); it exits non-zero when the server refused something."""
    process = await asyncio.create_subprocess_exec(
        "swaks",
        "--server", "127.0.0.1", "--port", str(port),
        "--helo", "app.example.net",
        "--from", f"ann@{sender.domain}",
        "--to", to,
        "--h-Subject", "Hello from swaks",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    transcript = out.decode(errors="replace")
    assert process.returncode == 0, transcript.replace(sender.key, "<key>")
    return transcript


def _row_id(transcript: str) -> str:
    found = re.search(r"<~*\s+250 2\.0\.0 Sent as (msg_\w+)", transcript)
    assert found, transcript
    return found[1]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_with_each_auth_mechanism(mechanism, sender, smtp_relay, submission_server):
    transcript = await swaks(
        submission_server.port,
        sender,
        "--tls",
        "--auth", mechanism, "--auth-user", "apikey", "--auth-password", sender.key,
    )  # fmt: skip
    assert "STARTTLS" in transcript and f"AUTH {mechanism}" in transcript
    sent = await row(sender, _row_id(transcript))
    assert sent["status"] == "sent" and sent["source"] == "smtp"
    [received] = smtp_relay.received
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]


async def test_implicit_tls_with_an_attachment_and_bcc(sender, smtp_relay, submission_server, tmp_path: Path):
    attachment = tmp_path / "report.pdf"
    attachment.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 40)
    hidden = f"hidden-{uuid.uuid4().hex[:6]}@example.org"
    transcript = await swaks(
        submission_server.tls_port,
        sender,
        "--tlsc",
        "--auth", "PLAIN", "--auth-user", "apikey", "--auth-password", sender.key,
        "--attach", f"@{attachment}",
        "--header", "To: bob@example.net",  # swaks's default To: would name every envelope recipient
        "--add-header", f"Bcc: {hidden}",
        to=f"bob@example.net,{hidden}",
    )  # fmt: skip
    assert "TLS started" in transcript
    sent = await row(sender, _row_id(transcript))
    assert sent["bcc"] == [hidden] and sent["to"] == ["bob@example.net"]
    [received] = smtp_relay.received
    assert sorted(received.rcpt_tos) == sorted(["bob@example.net", hidden])
    assert hidden.encode() not in received.content  # the Bcc: header is gone, the envelope keeps it
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    [part] = list(parsed.iter_attachments())
    assert part.get_filename() == "report.pdf" and part.get_content() == attachment.read_bytes()


async def test_a_member_logs_in_with_its_mailbox_password(relay_app, sender, smtp_relay, submission_server):
    from orgmail.core import mailboxes

    address = f"ann@{sender.domain}"
    async with relay_app.state.session_factory() as session:
        _mailbox, password = await mailboxes.create_mailbox(
            session, org_id=sender.org_id, store=relay_app.state.store, address=address
        )
    transcript = await swaks(
        submission_server.port,
        sender,
        "--tls",
        "--auth", "LOGIN", "--auth-user", address, "--auth-password", password,
    )  # fmt: skip
    assert (await row(sender, _row_id(transcript)))["status"] == "sent"
    assert dkim.verify(smtp_relay.received[0].content, txt_records=sender.dkim_records) == [True, True]
