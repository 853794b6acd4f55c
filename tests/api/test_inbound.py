"""The inbound listener with real parts on both sides (DESIGN.md §9): messages sent through the API to
the loopback relay, then reports about them delivered over SMTP (smtplib, in a thread) to the listener
on a free loopback port, which stores them in the real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import smtplib
import ssl
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from orgmail.config import load_settings
from orgmail.core import feedback
from orgmail.core.feedback import InboundReports
from orgmail.db.session import create_engine
from orgmail.db.tables import InboundReport, Suppression, Webhook, WebhookJob
from orgmail.ids import new_id
from orgmail.mail import inbound
from orgmail.mail.inbound import InboundListener
from orgmail.mail.reports import verp_address
from tests.conftest import make_sender
from tests.feedback_reports import (
    DELAYED,
    DELIVERED,
    GAVE_UP,
    HARD,
    POLICY,
    RELAYED,
    Rcpt,
    arf_report,
    original_headers,
    postfix_dsn,
    report_message_id,
)
from tests.smtp_relay import make_certificate

BOUNCE_DOMAIN = "bounces.orgmail.test"
FEEDBACK = f"feedback@{BOUNCE_DOMAIN}"


@dataclass
class Delivery:
    """The listener's replies to one SMTP transaction: (code, text) per command."""

    mail: tuple[int, bytes]
    rcpts: list[tuple[int, bytes]]
    data: tuple[int, bytes] | None  # None: no recipient was accepted, so no DATA


def _transaction(
    port: int,
    raw: bytes,
    to: Sequence[str],
    mail_from: str,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
    tls: ssl.SSLContext | None,
) -> Delivery:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="mx.example.net", timeout=10) as client:
        client.ehlo()
        if tls is not None:
            client.starttls(context=tls)
            client.ehlo()
        assert not client.has_extn("dsn") and not client.has_extn("auth")
        mail = client.mail(mail_from, list(mail_options))
        rcpts = [client.rcpt(address, list(rcpt_options)) for address in to]
        data = client.data(raw) if any(code == 250 for code, _ in rcpts) else None
        return Delivery(mail=mail, rcpts=rcpts, data=data)


async def deliver(
    port: int,
    raw: bytes,
    *,
    to: str | Sequence[str],
    mail_from: str = "",  # a DSN's null return path, MAIL FROM:<>
    mail_options: Sequence[str] = (),
    rcpt_options: Sequence[str] = (),
    tls: ssl.SSLContext | None = None,
) -> Delivery:
    recipients = [to] if isinstance(to, str) else list(to)
    return await asyncio.to_thread(_transaction, port, raw, recipients, mail_from, mail_options, rcpt_options, tls)


@dataclass
class Inbound:
    listener: InboundListener
    registry: CollectorRegistry
    app: object

    @property
    def port(self) -> int:
        return self.listener.address[1]

    async def deliver(self, raw: bytes, **kwargs) -> Delivery:
        return await deliver(self.port, raw, **kwargs)

    def count(self, result: str) -> float | None:
        """What /metrics shows for orgmail_inbound_reports_total{result=…}."""
        return self.registry.get_sample_value("orgmail_inbound_reports_total", {"result": result})

    async def stored(self, **where: str) -> list[InboundReport]:
        conditions = [getattr(InboundReport, column) == value for column, value in where.items()]
        async with self.app.state.session_factory() as session:  # type: ignore[attr-defined]
            return list((await session.scalars(select(InboundReport).where(*conditions))).all())


@pytest.fixture
def listen_settings(settings):
    return replace(settings, bounce_domain=BOUNCE_DOMAIN, inbound_listen=("127.0.0.1", 0))


async def start_listener(app, listen_settings, sink=None, **kwargs) -> Inbound:
    registry = CollectorRegistry()
    sink = sink or InboundReports(app.state.engine, bounce_domain=BOUNCE_DOMAIN)
    listener = await inbound.start(listen_settings, reports=sink, registry=registry, **kwargs)
    return Inbound(listener=listener, registry=registry, app=app)


@pytest.fixture
async def listener(relay_app, listen_settings) -> AsyncIterator[Inbound]:
    started = await start_listener(relay_app, listen_settings)
    yield started
    await started.listener.stop()


async def send(sender, to: Sequence[str] = ("bob@example.net",)) -> dict:
    body = {"from": f"ann@{sender.domain}", "to": list(to), "subject": "Hi", "text": "Hello."}
    return (await sender.ok("/v1/mail/messages/send", body))["message"]


async def events(sender, message_id: str) -> list[dict]:
    return (await sender.ok("/v1/mail/messages/events", {"id": message_id}))["events"]


async def message(sender, message_id: str) -> dict:
    return (await sender.ok("/v1/mail/messages/get", {"id": message_id}))["message"]


async def suppressed(sender) -> dict[str, str]:
    listed = (await sender.ok("/v1/mail/suppressions/list", {"limit": 100}))["suppressions"]
    return {entry["email"]: entry["reason"] for entry in listed}


def verp(sent: dict) -> str:
    return verp_address(sent["id"], bounce_domain=BOUNCE_DOMAIN)


def dsn(sent: dict, *recipients: Rcpt, **kwargs) -> bytes:
    original = original_headers(message_id=sent["messageId"], return_path=verp(sent), to=", ".join(sent["to"]))
    return postfix_dsn(to=verp(sent), recipients=recipients, envelope_id=sent["id"], original=original, **kwargs)


# --- DSNs ------------------------------------------------------------------------------------------


async def test_a_hard_bounce_is_stored_before_250_and_bounces_and_suppresses(sender, smtp_relay, listener):
    sent = await send(sender)
    raw = dsn(sent, Rcpt("bob@example.net", **HARD))
    # DSN parameters on the report's own transaction are accepted and ignored
    delivery = await listener.deliver(
        raw,
        to=verp(sent),
        mail_options=["RET=HDRS", f"ENVID={secrets.token_hex(4)}"],
        rcpt_options=["NOTIFY=NEVER", f"ORCPT=rfc822;{verp(sent).replace('+', '+2B')}"],
    )
    assert delivery.mail[0] == 250 and delivery.rcpts == [(250, b"2.1.5 OK")]
    assert delivery.data == (250, b"2.0.0 Report stored")
    [row] = await listener.stored(envelope_recipient=verp(sent))  # there as soon as the 250 is
    assert (row.kind, row.result, row.org_id, row.message_id) == ("dsn", "parsed", sender.org_id, sent["id"])
    assert row.raw == raw and row.envelope_sender == "<>" and row.dedupe_key.endswith("@mx.example.net>")

    sent_event, bounced = await events(sender, sent["id"])
    assert sent_event["type"] == "sent"
    assert (bounced["type"], bounced["recipient"], bounced["bounceType"], bounced["smtpStatus"]) == (
        "bounced",
        "bob@example.net",
        "hard",
        "5.1.1",
    )
    assert "User unknown" in bounced["diagnostic"] and bounced["orgId"] == sender.org_id
    got = await message(sender, sent["id"])
    assert (got["status"], got["lastEvent"]) == ("bounced", "bounced")
    assert (await suppressed(sender))["bob@example.net"] == "bounce"
    assert (listener.count("parsed"), listener.count("unparsed"), listener.count("duplicate")) == (1, 0, 0)


@pytest.mark.parametrize("failure", [POLICY, GAVE_UP], ids=["policy-5.7.1", "gave-up-4.4.7"])
async def test_a_soft_bounce_bounces_and_suppresses_nobody(sender, smtp_relay, listener, failure):
    sent = await send(sender)
    delivery = await listener.deliver(dsn(sent, Rcpt("bob@example.net", **failure)), to=verp(sent))
    assert delivery.data is not None and delivery.data[0] == 250
    bounced = (await events(sender, sent["id"]))[-1]
    assert (bounced["bounceType"], bounced["smtpStatus"]) == ("soft", failure["status"])
    assert (await message(sender, sent["id"]))["status"] == "bounced"  # nobody got it, hard or soft
    assert "bob@example.net" not in await suppressed(sender)


async def test_the_message_bounces_only_once_every_recipient_has(sender, smtp_relay, listener):
    sent = await send(sender, to=["a@example.net", "b@example.net"])
    await listener.deliver(dsn(sent, Rcpt("a@example.net", **HARD)), to=verp(sent))
    got = await message(sender, sent["id"])
    assert (got["status"], got["lastEvent"]) == ("sent", "bounced")
    await listener.deliver(dsn(sent, Rcpt("B@Example.net", **GAVE_UP)), to=verp(sent).lower())
    assert (await message(sender, sent["id"]))["status"] == "bounced"
    assert [(e["type"], e["recipient"]) for e in await events(sender, sent["id"])] == [
        ("sent", None),
        ("bounced", "a@example.net"),
        ("bounced", "b@example.net"),
    ]
    listed = await suppressed(sender)
    assert listed["a@example.net"] == "bounce" and "b@example.net" not in listed


async def test_two_reports_at_once_on_one_message_both_count(sender, smtp_relay, listener):
    sent = await send(sender, to=["a@example.net", "b@example.net"])
    first, second = await asyncio.gather(
        listener.deliver(dsn(sent, Rcpt("a@example.net", **HARD)), to=verp(sent)),
        listener.deliver(dsn(sent, Rcpt("b@example.net", **HARD)), to=verp(sent)),
    )
    assert first.data == second.data == (250, b"2.0.0 Report stored")
    assert (await message(sender, sent["id"]))["status"] == "bounced"  # each saw the other's event


async def test_a_reports_events_are_queued_for_the_orgs_webhooks(sender, smtp_relay, listener, relay_app):
    async with relay_app.state.session_factory() as session, session.begin():
        webhook = Webhook(
            id=new_id("whk"),
            org_id=sender.org_id,
            url="https://hooks.example/a",
            events=["message.bounced"],
            secret_encrypted=b"x",
        )
        session.add(webhook)
    sent = await send(sender)
    await listener.deliver(dsn(sent, Rcpt("bob@example.net", **HARD)), to=verp(sent))
    bounced = (await events(sender, sent["id"]))[-1]
    async with relay_app.state.session_factory() as session:
        jobs = (await session.scalars(select(WebhookJob).where(WebhookJob.webhook_id == webhook.id))).all()
    assert [(job.event_id, job.event_type, job.org_id) for job in jobs] == [
        (bounced["id"], "message.bounced", sender.org_id)
    ]


async def test_a_recipient_refused_at_send_time_counts_towards_bounced(sender, smtp_relay, listener):
    smtp_relay.behaviour.refuse["gone@example.net"] = "550 5.1.1 no such user"
    sent = await send(sender, to=["bob@example.net", "gone@example.net"])
    assert sent["status"] == "sent"
    await listener.deliver(dsn(sent, Rcpt("bob@example.net", **HARD)), to=verp(sent))
    assert (await message(sender, sent["id"]))["status"] == "bounced"


async def test_a_delay_is_deferred(sender, smtp_relay, listener):
    sent = await send(sender)
    await listener.deliver(dsn(sent, Rcpt("bob@example.net", **DELAYED)), to=verp(sent))
    deferred = (await events(sender, sent["id"]))[-1]
    assert (deferred["type"], deferred["recipient"], deferred["smtpStatus"]) == ("deferred", "bob@example.net", "4.4.1")
    got = await message(sender, sent["id"])
    assert (got["status"], got["lastEvent"]) == ("sent", "deferred")
    assert "bob@example.net" not in await suppressed(sender)


async def test_delivered_and_relayed_are_delivered_with_the_action_kept(sender, smtp_relay, listener):
    sent = await send(sender, to=["a@example.net", "b@example.net"])
    raw = dsn(sent, Rcpt("a@example.net", **DELIVERED), Rcpt("b@example.net", **RELAYED))
    await listener.deliver(raw, to=verp(sent))
    _sent, first, second = await events(sender, sent["id"])
    assert (first["type"], first["recipient"]) == ("delivered", "a@example.net")
    assert first["diagnostic"].startswith("delivered: smtp; 250 2.0.0")
    assert (second["type"], second["recipient"]) == ("delivered", "b@example.net")
    assert second["diagnostic"].startswith("relayed")
    got = await message(sender, sent["id"])
    assert (got["status"], got["lastEvent"]) == ("sent", "delivered")


async def test_a_block_about_an_address_the_message_was_not_sent_to_records_nothing(sender, smtp_relay, listener):
    sent = await send(sender, to=["a@example.net", "b@example.net"])
    await listener.deliver(dsn(sent, Rcpt("stranger@example.net", **HARD)), to=verp(sent))
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent"]
    assert "stranger@example.net" not in await suppressed(sender)


# --- feedback reports ------------------------------------------------------------------------------


@pytest.mark.parametrize("feedback_type", ["abuse", "fraud"])
async def test_a_complaint_is_found_by_its_return_path_and_suppresses_the_named_recipient(
    sender, smtp_relay, listener, feedback_type
):
    sent = await send(sender, to=["a@example.net", "b@example.net"])
    original = original_headers(message_id=sent["messageId"], return_path=verp(sent))
    raw = arf_report(to=FEEDBACK, original=original, feedback_type=feedback_type, rcpt_to=["B@example.net"])
    delivery = await listener.deliver(raw, to=FEEDBACK, mail_from="fbl@provider.example")
    assert delivery.data == (250, b"2.0.0 Report stored")
    complained = (await events(sender, sent["id"]))[-1]
    assert (complained["type"], complained["recipient"]) == ("complained", "b@example.net")
    assert feedback_type in complained["diagnostic"]
    listed = await suppressed(sender)
    assert listed["b@example.net"] == "complaint" and "a@example.net" not in listed
    got = await message(sender, sent["id"])
    assert (got["status"], got["lastEvent"]) == ("sent", "complained")


async def test_a_complaint_found_by_message_id_names_the_only_recipient(sender, smtp_relay, listener):
    sent = await send(sender)
    original = original_headers(message_id=sent["messageId"], return_path=f"ann@{sender.domain}")
    await listener.deliver(arf_report(to=FEEDBACK, original=original, headers_only=True), to=FEEDBACK)
    complained = (await events(sender, sent["id"]))[-1]
    assert (complained["type"], complained["recipient"]) == ("complained", "bob@example.net")
    assert (await suppressed(sender))["bob@example.net"] == "complaint"


async def test_a_complaint_about_several_recipients_naming_none_suppresses_nobody(sender, smtp_relay, listener):
    sent = await send(sender, to=["a@example.net", "b@example.net"])
    original = original_headers(message_id=sent["messageId"], return_path=verp(sent))
    await listener.deliver(arf_report(to=FEEDBACK, original=original), to=FEEDBACK)
    complained = (await events(sender, sent["id"]))[-1]
    assert (complained["type"], complained["recipient"]) == ("complained", None)
    assert await suppressed(sender) == {}


async def test_a_not_spam_report_is_kept_and_counted_and_does_nothing(sender, smtp_relay, listener):
    sent = await send(sender)
    original = original_headers(message_id=sent["messageId"], return_path=verp(sent))
    raw = arf_report(to=FEEDBACK, original=original, feedback_type="not-spam", rcpt_to=["bob@example.net"])
    delivery = await listener.deliver(raw, to=FEEDBACK)
    assert delivery.data is not None and delivery.data[0] == 250
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent"]
    [row] = await listener.stored(message_id=sent["id"])
    assert (row.kind, row.result, row.org_id) == ("arf", "parsed", sender.org_id)
    assert listener.count("parsed") == 1


# --- storage: duplicates, junk, failures ---------------------------------------------------------


async def test_the_same_report_twice_is_answered_250_twice_and_recorded_once(sender, smtp_relay, listener):
    sent = await send(sender)
    raw = dsn(sent, Rcpt("bob@example.net", **HARD))
    first = await listener.deliver(raw, to=verp(sent))
    again = await listener.deliver(raw, to=verp(sent))
    assert first.data == (250, b"2.0.0 Report stored")
    assert again.data == (250, b"2.0.0 Report already stored")
    assert len(await listener.stored(envelope_recipient=verp(sent))) == 1
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent", "bounced"]
    assert (listener.count("parsed"), listener.count("duplicate")) == (1, 1)


async def test_a_report_without_message_id_is_identified_by_its_bytes(sender, smtp_relay, listener):
    sent = await send(sender)
    raw = dsn(sent, Rcpt("bob@example.net", **DELAYED), message_id=None)
    await listener.deliver(raw, to=verp(sent))
    await listener.deliver(raw, to=verp(sent))
    [row] = await listener.stored(envelope_recipient=verp(sent))
    assert row.dedupe_key == f"sha256:{hashlib.sha256(raw).hexdigest()}"
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent", "deferred"]
    assert listener.count("duplicate") == 1


async def test_junk_to_a_valid_address_is_kept_whole_unparsed(sender, smtp_relay, listener):
    sent = await send(sender)
    raw = f"Subject: out of office {secrets.token_hex(4)}\r\n\r\nI am away until Monday.\r\n".encode()
    delivery = await listener.deliver(raw, to=verp(sent))
    assert delivery.data is not None and delivery.data[0] == 250
    [row] = await listener.stored(envelope_recipient=verp(sent))
    assert (row.kind, row.result, row.message_id, row.raw) == ("unknown", "unparsed", sent["id"], raw)
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent"]
    assert (listener.count("parsed"), listener.count("unparsed")) == (0, 1)


async def test_a_report_whose_processing_fails_is_kept_unparsed(sender, smtp_relay, listener, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(feedback, "consequences", broken)
    sent = await send(sender)
    delivery = await listener.deliver(dsn(sent, Rcpt("bob@example.net", **HARD)), to=verp(sent))
    assert delivery.data is not None and delivery.data[0] == 250
    [row] = await listener.stored(envelope_recipient=verp(sent))
    assert (row.kind, row.result, row.message_id) == ("dsn", "unparsed", sent["id"])
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent"]
    assert await suppressed(sender) == {}


async def test_a_database_failure_is_451_so_the_sender_retries(tmp_path):
    settings = load_settings(
        {},
        data_dir=tmp_path,
        database_url="sqlite+aiosqlite:///:memory:",
        secret_key=b"k",
        bounce_domain=BOUNCE_DOMAIN,
        inbound_listen=("127.0.0.1", 0),
    )
    unreachable = create_engine("postgresql+asyncpg://orgmail@127.0.0.1:1/orgmail")
    registry = CollectorRegistry()
    listener = await inbound.start(
        settings, reports=InboundReports(unreachable, bounce_domain=BOUNCE_DOMAIN), registry=registry
    )
    try:
        port = listener.address[1]
        verp_rcpt = verp_address("msg_01JF3ZK8Q2W5M7N9P4R6T8V0XY", bounce_domain=BOUNCE_DOMAIN)
        refused = await deliver(port, b"Subject: x\r\n\r\nx\r\n", to=verp_rcpt)
        assert refused.rcpts[0][0] == 451 and refused.rcpts[0][1].startswith(b"4.3.0")
        report = arf_report(to=FEEDBACK, original=original_headers(message_id="<a@b>", return_path="a@b"))
        deferred = await deliver(port, report, to=FEEDBACK)  # no database needed to take the RCPT
        assert deferred.data is not None and deferred.data[0] == 451 and deferred.data[1].startswith(b"4.3.0")
        assert registry.get_sample_value("orgmail_inbound_reports_total", {"result": "parsed"}) == 0
    finally:
        await listener.stop()
        await unreachable.dispose()


# --- RCPT, tenancy -------------------------------------------------------------------------------


async def test_rcpt_is_refused_for_anything_but_report_addresses(sender, smtp_relay, listener):
    sent = await send(sender)
    refused = [
        f"bounces+msg_{'0' * 10}{secrets.token_hex(8).upper()}@{BOUNCE_DOMAIN}",  # no such message
        f"bounces+{sent['id']}@example.net",  # another domain
        f"feedback@{sender.domain}",
        f"postmaster@{sender.domain}",  # the org's postmaster is not ours to take
        f"{sent['id']}@{BOUNCE_DOMAIN}",
        "bob@example.net",  # no open relay
    ]
    delivery = await listener.deliver(b"Subject: x\r\n\r\nx\r\n", to=refused)
    assert delivery.rcpts == [(550, b"5.1.1 No such recipient here")] * len(refused)
    assert delivery.data is None
    mixed = await listener.deliver(dsn(sent, Rcpt("bob@example.net", **DELAYED)), to=[refused[0], verp(sent)])
    assert [code for code, _ in mixed.rcpts] == [550, 250] and mixed.data is not None and mixed.data[0] == 250
    [row] = await listener.stored(message_id=sent["id"])
    assert row.envelope_recipient == verp(sent)


async def test_the_postmaster_is_accepted_and_what_it_gets_is_kept(sender, smtp_relay, listener):
    """RFC 5321 §4.5.1: mail for the postmaster (with the bounce domain, or alone) is taken."""
    for postmaster in (f"Postmaster@{BOUNCE_DOMAIN}", "<Postmaster>"):
        note = f"Subject: about your mail\r\nMessage-ID: <{secrets.token_hex(6)}@x.example>\r\n\r\nHello.\r\n".encode()
        delivery = await listener.deliver(note, to=[postmaster])
        assert delivery.rcpts == [(250, b"2.1.5 OK")] and delivery.data is not None and delivery.data[0] == 250
    assert listener.count("unparsed") == 2  # kept whole, for a person to read


async def test_another_orgs_message_is_never_touched(sender, smtp_relay, listener, relay_app, relay_http):
    other = await make_sender(relay_app, relay_http, "Other Org")
    mine, theirs = await send(sender, to=["shared@example.net"]), await send(other, to=["shared@example.net"])
    # A report sent to my message's VERP address that names their message everywhere else
    original = original_headers(message_id=theirs["messageId"], return_path=verp(theirs))
    raw = postfix_dsn(
        to=verp(mine), recipients=[Rcpt("shared@example.net", **HARD)], envelope_id=theirs["id"], original=original
    )
    await listener.deliver(raw, to=verp(mine))
    # We sent ENVID=<our id>: a DSN naming another envelope id is about neither message (or forged).
    assert [e["type"] for e in await events(sender, mine["id"])] == ["sent"]
    assert await suppressed(sender) == {}
    assert [e["type"] for e in await events(other, theirs["id"])] == ["sent"]
    assert await suppressed(other) == {}
    assert (await message(other, theirs["id"]))["status"] == "sent"
    # A complaint found by my Return-Path
    original = original_headers(message_id=mine["messageId"], return_path=verp(mine))
    await listener.deliver(arf_report(to=FEEDBACK, original=original), to=FEEDBACK)
    assert [e["type"] for e in await events(other, theirs["id"])] == ["sent"]
    assert await suppressed(other) == {}


# --- the listener itself: TLS, size, workers, stopping -----------------------------------------------


async def test_starttls_with_the_configured_certificate(sender, smtp_relay, relay_app, listen_settings, tmp_path):
    cert, key = make_certificate(tmp_path)
    started = await start_listener(relay_app, replace(listen_settings, tls_cert=cert, tls_key=key))
    try:
        sent = await send(sender)
        client_tls = ssl.create_default_context(cafile=str(cert))
        delivery = await started.deliver(dsn(sent, Rcpt("bob@example.net", **HARD)), to=verp(sent), tls=client_tls)
        assert delivery.data == (250, b"2.0.0 Report stored")
        assert (await message(sender, sent["id"]))["status"] == "bounced"
    finally:
        await started.listener.stop()


async def test_a_report_over_the_size_limit_is_552_and_not_stored(sender, smtp_relay, relay_app, listen_settings):
    started = await start_listener(relay_app, listen_settings, max_report_bytes=4000)
    try:
        sent = await send(sender)
        raw = dsn(sent, Rcpt("bob@example.net", **HARD)).replace(
            b"I'm sorry", (b"x" * 70 + b"\r\n") * 80 + b"I'm sorry"
        )
        delivery = await started.deliver(raw, to=verp(sent))
        assert delivery.data is not None and delivery.data[0] == 552
        assert await started.stored(envelope_recipient=verp(sent)) == []
    finally:
        await started.listener.stop()


async def test_workers_share_the_port(sender, smtp_relay, relay_app, listen_settings):
    first = await start_listener(relay_app, listen_settings)
    second = await start_listener(relay_app, replace(listen_settings, inbound_listen=("127.0.0.1", first.port)))
    try:
        assert second.port == first.port  # SO_REUSEPORT: each `--workers` process binds it
        await first.listener.stop()
        sent = await send(sender)
        delivery = await deliver(first.port, dsn(sent, Rcpt("bob@example.net", **DELAYED)), to=verp(sent))
        assert delivery.data is not None and delivery.data[0] == 250
        assert second.count("parsed") == 1
    finally:
        await second.listener.stop()


class SlowSink:
    """The real sink, slower to store: a report is in flight for a while."""

    def __init__(self, sink: InboundReports):
        self._sink = sink
        self.storing = asyncio.Event()

    async def accepts(self, recipient: str) -> bool:
        return await self._sink.accepts(recipient)

    async def record(self, **report):
        self.storing.set()
        await asyncio.sleep(0.3)
        return await self._sink.record(**report)


async def test_stop_lets_the_report_in_flight_finish_then_takes_no_more(sender, smtp_relay, relay_app, listen_settings):
    sink = SlowSink(InboundReports(relay_app.state.engine, bounce_domain=BOUNCE_DOMAIN))
    started = await start_listener(relay_app, listen_settings, sink=sink)
    sent = await send(sender)
    raw = dsn(sent, Rcpt("bob@example.net", **HARD), message_id=report_message_id())
    in_flight = asyncio.ensure_future(started.deliver(raw, to=verp(sent)))
    await asyncio.wait_for(sink.storing.wait(), timeout=10)
    await started.listener.stop()
    delivery = await in_flight
    assert delivery.data == (250, b"2.0.0 Report stored")
    assert len(await started.stored(envelope_recipient=verp(sent))) == 1
    with pytest.raises(ConnectionRefusedError):
        await started.deliver(raw, to=verp(sent))


async def test_stop_says_421_to_idle_clients_at_once(relay_app, listen_settings):
    started = await start_listener(relay_app, listen_settings)
    connected, stopped = threading.Event(), threading.Event()

    def idle_client() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", started.port, timeout=10) as client:
            client.ehlo()
            connected.set()
            stopped.wait(10)
            return client.getreply()  # what the listener said unasked

    client = asyncio.ensure_future(asyncio.to_thread(idle_client))
    await asyncio.to_thread(connected.wait, 10)
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    await started.listener.stop()
    assert loop.time() - stopping < 1  # no grace period for a client with no transaction under way
    stopped.set()
    assert await client == (421, b"4.3.2 Service shutting down, try again later")


async def test_a_dsn_naming_an_address_the_message_was_not_sent_to_suppresses_nobody(sender, smtp_relay, listener):
    """Message ids are guessable and anyone can mail a VERP address: a forged DSN for a one-recipient
    message that names some other address must not bounce (or suppress) the real recipient."""
    sent = await send(sender, to=["real@example.net"])
    await listener.deliver(postfix_dsn(to=verp(sent), recipients=[Rcpt("victim@example.org", **HARD)]), to=verp(sent))
    assert [e["type"] for e in await events(sender, sent["id"])] == ["sent"]
    assert await suppressed(sender) == {}


async def test_a_reported_hard_bounce_queues_suppression_created(sender, smtp_relay, listener, relay_app):
    async with relay_app.state.session_factory() as session, session.begin():
        webhook = Webhook(
            id=new_id("whk"),
            org_id=sender.org_id,
            url="https://hooks.example/s",
            events=["suppression.created"],
            secret_encrypted=b"x",
        )
        session.add(webhook)
    sent = await send(sender)
    await listener.deliver(dsn(sent, Rcpt("bob@example.net", **HARD)), to=verp(sent))
    async with relay_app.state.session_factory() as session:
        suppression = await session.scalar(
            select(Suppression).where(Suppression.org_id == sender.org_id, Suppression.email == "bob@example.net")
        )
        jobs = (await session.scalars(select(WebhookJob).where(WebhookJob.webhook_id == webhook.id))).all()
    assert suppression is not None and suppression.reason == "bounce"
    assert [(job.event_id, job.event_type) for job in jobs] == [("evt_" + suppression.id[4:], "suppression.created")]
    # The same report again adds no suppression, so nothing more is queued.
    await listener.deliver(dsn(sent, Rcpt("bob@example.net", **HARD)), to=verp(sent))
    async with relay_app.state.session_factory() as session:
        assert len((await session.scalars(select(WebhookJob).where(WebhookJob.webhook_id == webhook.id))).all()) == 1
