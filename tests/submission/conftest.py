"""A submission listener on free loopback ports (STARTTLS and implicit TLS, a self-signed certificate
made here with `cryptography`), in front of `relay_app`'s pipeline: what a client submits reaches the
loopback SMTP relay of tests/smtp_relay.py, signed, through the real database."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from orgmail.core.sending.submission import SubmissionIntake
from orgmail.mail import submission
from orgmail.mail.submission import SubmissionListener
from tests.conftest import Sender
from tests.smtp_relay import make_certificate


@dataclass
class Submission:
    listener: SubmissionListener
    certificate: Path

    @property
    def port(self) -> int:
        return self.listener.addresses[0][1]

    @property
    def tls_port(self) -> int:
        return self.listener.addresses[1][1]

    def client_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certificate))
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("submission-tls"))


@pytest.fixture
async def submission_server(relay_app, settings, certificate) -> AsyncIterator[Submission]:
    cert, key = certificate
    listen = replace(
        settings,
        submission_listen=("127.0.0.1", 0),
        submission_tls_listen=("127.0.0.1", 0),
        tls_cert=cert,
        tls_key=key,
    )
    intake = SubmissionIntake(relay_app.state.session_factory, relay_app.state.send_pipeline)
    listener = await submission.start(listen, intake=intake, hostname="submit.orgmail.test")
    yield Submission(listener, cert)
    await listener.stop(grace_seconds=1)


async def row(sender: Sender, row_id: str) -> dict:
    return (await sender.ok("/v1/mail/messages/get", {"id": row_id}))["message"]


def message(sender: Sender, *, to: str = "bob@example.net", extra: str = "", message_id: str | None = None) -> bytes:
    headers = f"From: Ann <ann@{sender.domain}>\r\nTo: {to}\r\nSubject: Hello over SMTP\r\n{extra}"
    if message_id:
        headers += f"Message-ID: {message_id}\r\n"
    return (headers + "\r\nHello from an SMTP client.\r\n").encode()


async def in_thread(function, *args, **kwargs):
    """smtplib blocks, and the listener runs in this loop: the client goes to a thread."""
    return await asyncio.to_thread(function, *args, **kwargs)


def smtp_client(port: int, *, source: str = "127.0.0.1") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, local_hostname="app.example.net", timeout=15, source_address=(source, 0))
    client.ehlo()
    return client
