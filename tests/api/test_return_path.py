"""The return path (DESIGN.md §9): with ORGMAIL_BOUNCE_DOMAIN the envelope sender is the message's VERP
address, and DSNs are asked for only from a relay that offers them."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from orgmail.app import create_app
from tests.conftest import make_sender

BOUNCE_DOMAIN = "bounces.orgmail.test"


@pytest.fixture
async def verp_sender(settings, smtp_relay):
    smtp_relay.behaviour.dsn = True  # before the app opens its first connection: EHLO offers DSN
    app = create_app(replace(settings, relay_url=smtp_relay.url, bounce_domain=BOUNCE_DOMAIN, relay_timeout_seconds=5))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://orgmail.test") as http:
            yield await make_sender(app, http, "Verp Inc")


async def test_the_envelope_sender_names_the_message_and_dsns_are_requested(verp_sender, smtp_relay):
    body = {
        "from": f"Ann <ann@{verp_sender.domain}>",
        "to": ["bob@example.net", "c+d@example.net"],
        "subject": "Hi",
        "text": "Hello.",
    }
    message = (await verp_sender.ok("/v1/mail/messages/send", body))["message"]
    [received] = smtp_relay.received
    assert received.mail_from == f"bounces+{message['id']}@{BOUNCE_DOMAIN}"
    assert "RET=HDRS" in received.mail_options and f"ENVID={message['id']}" in received.mail_options
    assert received.rcpt_options["c+d@example.net"] == ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;c+2Bd@example.net"]
    assert b"From: Ann <ann@" in received.content  # the header From is untouched


async def test_without_a_bounce_domain_the_envelope_sender_is_the_from_address(sender, smtp_relay):
    body = {"from": f"ann@{sender.domain}", "to": "bob@example.net", "subject": "Hi", "text": "Hello."}
    await sender.ok("/v1/mail/messages/send", body)
    [received] = smtp_relay.received
    assert received.mail_from == f"ann@{sender.domain}"
    assert not any(option.startswith(("RET=", "ENVID=")) for option in received.mail_options)
