"""Relays: the SMTP pool against a real aiosmtpd server (pooling, STARTTLS, implicit TLS, AUTH, a relay
that is down), relay URLs, and the outbox. What each SMTP reply or fault makes of a send is in
test_relay_outcomes.py; PIPELINING itself in test_relay_pipelining.py."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote

import pytest

from orgmail.mail.relay import OutboxRelay, RelayTemporaryFailure, SmtpRelay, smtp_target_from_url
from tests.smtp_relay import MESSAGE, SmtpTestRelay, make_certificate, relay_to


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


async def test_pool_reuses_a_bounded_number_of_connections(smtp_relay, tmp_path):
    relay = relay_to(tmp_path, smtp_relay.url, relay_pool_size=3)
    assert isinstance(relay, SmtpRelay)
    before = smtp_relay.sessions
    try:
        results = await asyncio.gather(
            *(
                relay.send(sender="ann@example.com", recipients=[f"r{n}@example.net"], message=MESSAGE)
                for n in range(20)
            )
        )
        for _ in range(10):
            await relay.send(sender="ann@example.com", recipients=["seq@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert all(r.accepted and r.response.startswith("250") for r in results)
    assert len(smtp_relay.received) == 30
    assert smtp_relay.sessions - before <= 3


async def test_refusals_are_values_and_a_5xx_for_everyone_sends_nothing(smtp_relay, tmp_path):
    relay = relay_to(tmp_path, smtp_relay.url)
    smtp_relay.behaviour.refuse["nobody@example.net"] = "550 5.1.1 User unknown"
    try:
        some = await relay.send(
            sender="ann@example.com", recipients=["bob@example.net", "nobody@example.net"], message=MESSAGE
        )
        nobody = await relay.send(sender="ann@example.com", recipients=["nobody@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert some.accepted == ["bob@example.net"] and some.rejected == {"nobody@example.net": (550, "5.1.1 User unknown")}
    assert nobody.accepted == [] and nobody.rejected == {"nobody@example.net": (550, "5.1.1 User unknown")}
    assert [r.rcpt_tos for r in smtp_relay.received] == [["bob@example.net"]]


async def test_starttls_and_auth(certificate, tmp_path):
    server = SmtpTestRelay(tls=certificate, credentials=("relay user", "s3cret:p@ss"))
    await server.start()
    cafile = quote(str(certificate[0]))
    good = (
        f"smtp+starttls://{quote('relay user')}:{quote('s3cret:p@ss', safe='')}@127.0.0.1:{server.port}?cafile={cafile}"
    )
    try:
        relay = relay_to(tmp_path, good)
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await relay.close()
        assert result.accepted == ["bob@example.net"]
        assert server.logins == ["relay user"] and len(server.received) == 1

        wrong_password = relay_to(tmp_path, good.replace("s3cret", "guess"))
        with pytest.raises(RelayTemporaryFailure, match="credentials"):
            await wrong_password.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        untrusted = relay_to(tmp_path, good.split("?")[0])  # the system CAs do not know our test certificate
        with pytest.raises(RelayTemporaryFailure):
            await untrusted.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        plain = relay_to(tmp_path, f"smtp://{quote('relay user')}:x@127.0.0.1:{server.port}")
        with pytest.raises(RelayTemporaryFailure):  # the server insists on STARTTLS first
            await plain.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        assert len(server.received) == 1
    finally:
        await server.stop()


async def test_implicit_tls(certificate, tmp_path):
    server = SmtpTestRelay(tls=certificate, implicit_tls=True)
    await server.start()
    try:
        relay = relay_to(tmp_path, f"smtps://127.0.0.1:{server.port}?cafile={quote(str(certificate[0]))}")
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await relay.close()
        assert result.accepted == ["bob@example.net"] and len(server.received) == 1
    finally:
        await server.stop()


async def test_relay_down_then_back(smtp_relay, tmp_path):
    relay = relay_to(tmp_path, smtp_relay.url)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await smtp_relay.stop()
        with pytest.raises(RelayTemporaryFailure):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await smtp_relay.start()
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net"] and len(smtp_relay.received) == 2


def test_relay_urls():
    target = smtp_target_from_url("smtp+starttls://user%40corp:p%3Ass@smtp.example.com")
    assert (target.hostname, target.port, target.start_tls, target.use_tls) == ("smtp.example.com", 587, True, False)
    assert (target.username, target.password) == ("user@corp", "p:ss")
    assert smtp_target_from_url("smtps://smtp.example.com").port == 465
    assert smtp_target_from_url("smtp://smtp.example.com:2525").port == 2525
    assert smtp_target_from_url("smtp://smtp.example.com").tls_context is None
    with pytest.raises(ValueError):
        smtp_target_from_url("http://smtp.example.com")


async def test_outbox_writes_each_message_atomically(tmp_path):
    relay = relay_to(tmp_path, "outbox")
    assert isinstance(relay, OutboxRelay)
    result = await relay.send(
        sender="ann@example.com", recipients=["bob@example.net", "c@example.net"], message=MESSAGE
    )
    path = tmp_path / "outbox" / "msg_01TEST@example.com.eml"
    assert result.accepted == ["bob@example.net", "c@example.net"] and str(path) in result.response
    assert path.read_bytes() == MESSAGE
    assert os.listdir(tmp_path / "outbox") == [path.name]  # no temporary file left behind


async def test_outbox_never_shows_a_partial_message(tmp_path, monkeypatch):
    relay = OutboxRelay(tmp_path / "outbox")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    assert os.listdir(tmp_path / "outbox") == []
