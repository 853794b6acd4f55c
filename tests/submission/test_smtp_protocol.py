"""Submission's protocol edges (DESIGN.md §10) with the standard library's smtplib against the real
listener, database and loopback relay (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
import logging
import smtplib
import socket
import uuid
from dataclasses import replace

import pytest

from orgmail.core import mailboxes, suppressions
from orgmail.core.sending import Limits
from orgmail.core.sending.submission import SubmissionIntake
from orgmail.mail import dkim, submission
from tests.conftest import make_sender
from tests.submission.conftest import in_thread, message, row, smtp_client


def _send(port: int, user: str, password: str, raw: bytes, to: list[str], *, source: str = "127.0.0.1"):
    """AUTH PLAIN on loopback without TLS, then one transaction: (RCPT replies, DATA reply)."""
    with smtp_client(port, source=source) as client:
        client.login(user, password)
        client.mail("whatever@client.example")
        rcpts = [client.rcpt(address) for address in to]
        if not any(code == 250 for code, _ in rcpts):
            return rcpts, None
        return rcpts, client.data(raw)


def _row_id(reply: tuple[int, bytes]) -> str:
    return reply[1].decode().rsplit(" ", 1)[-1].strip("()")


async def test_mail_before_auth_is_530(submission_server):
    def attempt():
        with smtp_client(submission_server.port) as client:
            return client.mail("ann@example.com")

    assert await in_thread(attempt) == (530, b"5.7.0 Authentication required")


async def test_api_key_sends_signed_row_with_source_smtp(sender, smtp_relay, submission_server):
    raw = message(sender, message_id="<app-1@client.example>")
    rcpts, data = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert rcpts == [(250, b"2.1.5 OK")] and data is not None and data[0] == 250
    sent = await row(sender, _row_id(data))
    assert sent["status"] == "sent" and sent["source"] == "smtp"
    assert sent["messageId"] == "<app-1@client.example>"
    [received] = smtp_relay.received
    assert received.mail_from == f"ann@{sender.domain}"  # set by orgmail, not the client's MAIL FROM
    assert received.rcpt_tos == ["bob@example.net"]
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]
    assert b"\r\nDate: " in received.content and b"Message-ID: <app-1@client.example>" in received.content


async def test_credentials_reach_no_log_even_at_debug(sender, smtp_relay, submission_server, caplog):
    """aiosmtpd logs each command it reads ("mail.log", DEBUG and INFO) with AUTH's argument masked;
    nothing of ours logs a credential either."""
    caplog.set_level(logging.DEBUG)
    raw = message(sender, message_id="<logged-1@client.example>")
    _rcpts, data = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert data is not None and data[0] == 250
    plain = base64.b64encode(f"\0apikey\0{sender.key}".encode()).decode()
    assert sender.key not in caplog.text and plain not in caplog.text


async def test_a_message_id_is_added_on_the_senders_domain(sender, smtp_relay, submission_server):
    _rcpts, data = await in_thread(
        _send, submission_server.port, "apikey", sender.key, message(sender), ["b@example.net"]
    )
    assert data is not None and data[0] == 250
    row_id = _row_id(data)
    assert (await row(sender, row_id))["messageId"] == f"<{row_id}@{sender.domain}>"
    assert f"Message-ID: <{row_id}@{sender.domain}>".encode() in smtp_relay.received[0].content


async def test_wrong_password_is_535(sender, submission_server):
    def attempt():
        with smtp_client(submission_server.port) as client:
            client.login("apikey", sender.key + "x")

    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        await in_thread(attempt)
    assert refused.value.smtp_code == 535


def _outside_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_auth_over_plain_text_from_outside_loopback_is_refused(relay_app, settings, sender):
    outside = _outside_address()
    if outside is None:
        pytest.skip("no non-loopback interface")
    intake = SubmissionIntake(relay_app.state.session_factory, relay_app.state.send_pipeline)
    listener = await submission.start(replace(settings, submission_listen=(outside, 0)), intake=intake)
    try:

        def attempt():
            with smtplib.SMTP(outside, listener.addresses[0][1], timeout=10) as client:
                client.ehlo()
                offered = client.has_extn("auth")
                return offered, client.docmd(
                    "AUTH", "PLAIN " + base64.b64encode(f"\0apikey\0{sender.key}".encode()).decode()
                )

        offered, answer = await in_thread(attempt)
    finally:
        await listener.stop(grace_seconds=1)
    assert not offered
    assert answer[0] == 538


async def _member(relay_app, sender) -> tuple[str, str]:
    address = f"m{uuid.uuid4().hex[:8]}@{sender.domain}"
    async with relay_app.state.session_factory() as session:
        _mailbox, password = await mailboxes.create_mailbox(
            session, org_id=sender.org_id, store=relay_app.state.store, address=address
        )
    return address, password


async def test_member_sends_from_its_own_address(relay_app, sender, smtp_relay, submission_server):
    address, password = await _member(relay_app, sender)
    raw = f"From: Me <{address}>\r\nTo: bob@example.net\r\nSubject: mine\r\n\r\nhi\r\n".encode()
    _rcpts, data = await in_thread(_send, submission_server.port, address, password, raw, ["bob@example.net"])
    assert data is not None and data[0] == 250
    assert dkim.verify(smtp_relay.received[0].content, txt_records=sender.dkim_records) == [True, True]


async def test_member_with_another_from_is_550_at_end_of_data(relay_app, sender, smtp_relay, submission_server):
    address, password = await _member(relay_app, sender)
    other = message(sender)  # From ann@ the same domain: not the member's address
    _rcpts, data = await in_thread(_send, submission_server.port, address, password, other, ["bob@example.net"])
    assert data is not None and data[0] == 550 and data[1].startswith(b"5.7.1")
    with_sender = f"From: {address}\r\nSender: ann@{sender.domain}\r\nTo: b@example.net\r\n\r\nhi\r\n".encode()
    _rcpts, data = await in_thread(_send, submission_server.port, address, password, with_sender, ["b@example.net"])
    assert data is not None and data[0] == 550 and data[1].startswith(b"5.7.1")
    assert smtp_relay.received == []


async def test_suppressed_recipient_is_550_naming_the_reason(relay_app, sender, smtp_relay, submission_server):
    async with relay_app.state.session_factory() as session:
        await suppressions.add_suppression(session, org_id=sender.org_id, email="gone@example.net", reason="bounce")
    rcpts, data = await in_thread(
        _send, submission_server.port, "apikey", sender.key, message(sender), ["gone@example.net", "bob@example.net"]
    )
    assert rcpts[0] == (550, b"5.7.1 Recipient suppressed (bounce)")
    assert rcpts[1][0] == 250 and data is not None and data[0] == 250
    assert smtp_relay.received[0].rcpt_tos == ["bob@example.net"]


async def test_recipients_past_the_limit_are_452(sender, smtp_relay, submission_server, relay_app):
    limit = relay_app.state.send_pipeline.limits.max_recipients
    to = [f"r{i}@example.net" for i in range(limit + 2)]
    rcpts, data = await in_thread(_send, submission_server.port, "apikey", sender.key, message(sender), to)
    assert [code for code, _ in rcpts[:limit]] == [250] * limit
    assert rcpts[limit:] == [(452, b"4.5.3 Too many recipients")] * 2
    assert data is not None and data[0] == 250
    assert len(smtp_relay.received[0].rcpt_tos) == limit


async def test_size_is_advertised_and_a_larger_declared_size_is_552(sender, submission_server, relay_app):
    limit = relay_app.state.send_pipeline.limits.max_message_bytes

    def attempt():
        with smtp_client(submission_server.port) as client:
            client.login("apikey", sender.key)
            return client.esmtp_features.get("size"), client.mail("a@example.com", [f"SIZE={limit + 1}"])

    size, answer = await in_thread(attempt)
    assert size == str(limit) and answer[0] == 552


async def test_signed_form_over_the_limit_is_552_5_3_4(relay_app, settings, sender, smtp_relay):
    small = replace(relay_app.state.send_pipeline, limits=Limits(max_recipients=50, max_message_bytes=3000))
    listener = await submission.start(
        replace(settings, submission_listen=("127.0.0.1", 0)),
        intake=SubmissionIntake(relay_app.state.session_factory, small),
    )
    try:
        raw = message(sender, extra="X-Pad: " + "p" * 70 + "\r\n") + (b"x" * 70 + b"\r\n") * 36
        assert len(raw) < 3000
        _rcpts, data = await in_thread(_send, listener.addresses[0][1], "apikey", sender.key, raw, ["b@example.net"])
    finally:
        await listener.stop(grace_seconds=1)
    assert data is not None and data[0] == 552 and data[1].startswith(b"5.3.4")
    assert smtp_relay.received == []


async def test_relay_down_is_451_and_a_retry_by_message_id_relays_once(sender, smtp_relay, submission_server):
    raw = message(sender, message_id=f"<retry-{uuid.uuid4().hex}@client.example>")
    await smtp_relay.stop()
    _rcpts, first = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert first is not None and first[0] == 451
    row_id = _row_id(first)
    assert (await row(sender, row_id))["status"] == "failed"
    await smtp_relay.start()
    _rcpts, again = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert again is not None and again[0] == 250 and _row_id(again) == row_id
    assert len(smtp_relay.received) == 1
    assert (await row(sender, row_id))["status"] == "sent"


async def test_resending_a_sent_message_id_answers_250_without_relaying(sender, smtp_relay, submission_server):
    raw = message(sender, message_id=f"<once-{uuid.uuid4().hex}@client.example>")
    _rcpts, first = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    _rcpts, again = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert first is not None and again is not None and first[0] == again[0] == 250
    assert _row_id(again) == _row_id(first)
    assert len(smtp_relay.received) == 1


async def test_one_message_id_submitted_twice_at_once_is_relayed_once(sender, smtp_relay, submission_server):
    """First one wins, even when neither can see the other's row yet: the second waits for the first's outcome."""
    smtp_relay.behaviour.delay_data = 0.3
    raw = message(sender, message_id=f"<twice-{uuid.uuid4().hex}@client.example>")
    both = await asyncio.gather(
        *(in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"]) for _ in range(2))
    )
    replies = [data for _rcpts, data in both]
    assert all(data is not None and data[0] == 250 for data in replies), replies
    assert len({_row_id(data) for data in replies if data is not None}) == 1
    assert len(smtp_relay.received) == 1


async def test_api_key_of_one_org_cannot_send_from_another_orgs_domain(
    relay_app, relay_http, sender, smtp_relay, submission_server
):
    other = await make_sender(relay_app, relay_http, "Other Org")
    _rcpts, data = await in_thread(
        _send, submission_server.port, "apikey", sender.key, message(other), ["b@example.net"]
    )
    assert data is not None and data[0] == 550 and data[1].startswith(b"5.7.1")
    assert smtp_relay.received == []


def _auth_plain(client: smtplib.SMTP, password: str) -> int:
    """One AUTH PLAIN command (smtplib's `login` would try each mechanism in turn): its reply code."""
    try:
        return client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0apikey\0{password}".encode()).decode())[0]
    except smtplib.SMTPServerDisconnected:
        return -1


async def test_fifth_failed_auth_closes_and_blocks_that_address_only(sender, submission_server):
    port = submission_server.port

    def fail_five() -> tuple[list[int], bool]:
        with smtp_client(port, source="127.0.0.2") as client:
            codes = [_auth_plain(client, "wrong") for _ in range(5)]
            closed = _auth_plain(client, sender.key) == -1
        return codes, closed

    def login(source: str) -> int:
        with smtp_client(port, source=source) as client:
            return _auth_plain(client, sender.key)

    codes, closed = await in_thread(fail_five)
    assert codes == [535, 535, 535, 535, 421] and closed
    assert await in_thread(login, "127.0.0.2") == 421  # the right key, from the same address: still 421
    assert await in_thread(login, "127.0.0.1") == 235  # other addresses are served


async def test_relay_refusing_everyone_is_554_naming_the_row(sender, smtp_relay, submission_server):
    smtp_relay.behaviour.refuse["bob@example.net"] = "550 5.1.1 no such user"
    _rcpts, data = await in_thread(
        _send, submission_server.port, "apikey", sender.key, message(sender), ["bob@example.net"]
    )
    assert data is not None and data[0] == 554
    assert (await row(sender, _row_id(data)))["status"] == "bounced"


async def test_a_message_without_from_is_550_and_writes_no_row(sender, smtp_relay, submission_server):
    raw = b"To: bob@example.net\r\nSubject: who?\r\nMessage-ID: <nofrom@client.example>\r\n\r\nhi\r\n"
    _rcpts, data = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert data is not None and data[0] == 550 and data[1].startswith(b"5.6.0")
    listed = await sender.ok("/v1/mail/messages/list", {})
    assert all(m["messageId"] != "<nofrom@client.example>" for m in listed["messages"])
    assert smtp_relay.received == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage without any header\r\n",
        b"From: \r\nTo: bob@example.net\r\n\r\nempty From\r\n",
        b"From: not an address\r\n\r\nbody\r\n",
        b"From: a@b.example, c@d.example\r\n\r\ntwo Froms\r\n",
    ],
)
async def test_malformed_messages_are_refused_for_good(raw, sender, smtp_relay, submission_server):
    _rcpts, data = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert data is not None and data[0] == 550, data
    assert smtp_relay.received == []


async def test_eight_bit_headers_are_sent_and_stored(sender, smtp_relay, submission_server):
    raw = (
        f"From: Zo\xc3\xab <ann@{sender.domain}>\r\nTo: bob@example.net\r\nSubject: caf\xc3\xa9 \xff\r\n\r\n"
        "8-bit body: \xc3\xa9\r\n"
    ).encode("latin-1")
    _rcpts, data = await in_thread(_send, submission_server.port, "apikey", sender.key, raw, ["bob@example.net"])
    assert data is not None and data[0] == 250, data
    stored = await row(sender, _row_id(data))
    assert stored["subject"] == "café \ufffd" and stored["from"] == f"Zoë <ann@{sender.domain}>"
    assert dkim.verify(smtp_relay.received[0].content, txt_records=sender.dkim_records) == [True, True]


async def test_the_apps_lifespan_starts_and_stops_the_listener(settings, smtp_relay_server):
    from orgmail.app import create_app

    app = create_app(replace(settings, relay_url=smtp_relay_server.url, submission_listen=("127.0.0.1", 0)))
    async with app.router.lifespan_context(app):
        port = app.state.submission_listener.addresses[0][1]

        def greet() -> tuple[int, bytes]:
            with smtp_client(port) as client:
                return client.noop()

        assert (await in_thread(greet))[0] == 250
    with pytest.raises(OSError):
        await in_thread(smtp_client, port)
