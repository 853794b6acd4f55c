"""Relays against a real aiosmtpd server: pooling, STARTTLS, implicit TLS, AUTH, timeouts, PIPELINING and
one command at a time; a scripted server for pipelined replies however they arrive; the outbox."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from urllib.parse import quote

import pytest

from orgmail.config import load_settings
from orgmail.mail.relay import (
    OutboxRelay,
    RelayResult,
    RelayTemporaryFailure,
    SmtpRelay,
    relay_from_url,
    smtp_target_from_url,
)
from tests.smtp_relay import SmtpTestRelay, make_certificate

MESSAGE = (
    b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n"
    b"Message-ID: <msg_01TEST@example.com>\r\n\r\nHello.\r\n"
)


def _relay(tmp_path, url: str, **overrides):
    settings = load_settings(
        {}, data_dir=tmp_path, database_url="sqlite+aiosqlite:///:memory:", secret_key=b"k", relay_url=url, **overrides
    )
    return relay_from_url(settings)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


async def test_pool_reuses_a_bounded_number_of_connections(smtp_relay, tmp_path):
    relay = _relay(tmp_path, smtp_relay.url, relay_pool_size=3)
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
    relay = _relay(tmp_path, smtp_relay.url)
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
        relay = _relay(tmp_path, good)
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await relay.close()
        assert result.accepted == ["bob@example.net"]
        assert server.logins == ["relay user"] and len(server.received) == 1

        wrong_password = _relay(tmp_path, good.replace("s3cret", "guess"))
        with pytest.raises(RelayTemporaryFailure, match="credentials"):
            await wrong_password.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        untrusted = _relay(tmp_path, good.split("?")[0])  # the system CAs do not know our test certificate
        with pytest.raises(RelayTemporaryFailure):
            await untrusted.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        plain = _relay(tmp_path, f"smtp://{quote('relay user')}:x@127.0.0.1:{server.port}")
        with pytest.raises(RelayTemporaryFailure):  # the server insists on STARTTLS first
            await plain.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        assert len(server.received) == 1
    finally:
        await server.stop()


async def test_implicit_tls(certificate, tmp_path):
    server = SmtpTestRelay(tls=certificate, implicit_tls=True)
    await server.start()
    try:
        relay = _relay(tmp_path, f"smtps://127.0.0.1:{server.port}?cafile={quote(str(certificate[0]))}")
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await relay.close()
        assert result.accepted == ["bob@example.net"] and len(server.received) == 1
    finally:
        await server.stop()


async def test_a_slow_relay_times_out_and_the_pool_recovers(smtp_relay, tmp_path):
    relay = _relay(tmp_path, smtp_relay.url, relay_timeout_seconds=0.3, relay_pool_size=1)
    smtp_relay.behaviour.delay_data = 1.0
    try:
        with pytest.raises(RelayTemporaryFailure, match="did not answer"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        await asyncio.sleep(0.8)  # the server finishes the abandoned transaction
        smtp_relay.reset()
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net"] and len(smtp_relay.received) == 1


async def test_relay_down_then_back(smtp_relay, tmp_path):
    relay = _relay(tmp_path, smtp_relay.url)
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
    relay = _relay(tmp_path, "outbox")
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


# --- PIPELINING (RFC 2920) and one command at a time: the same outcomes ---------------------------
both_ways = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-at-a-time"])


def _pipelined(relay: SmtpRelay) -> bool:
    [connection] = relay._idle
    return connection.pipeline is not None


@both_ways
async def test_the_path_follows_what_the_server_offers(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    relay = _relay(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        message = MESSAGE + b".starts with a dot\r\n.\r\nbare LF\nlast line"
        result = await relay.send(
            sender="ann@example.com", recipients=["bob@example.net", "c@example.net"], message=message
        )
        assert _pipelined(relay) is pipelining
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net", "c@example.net"] and result.response.startswith("250 2.0.0")
    [received] = smtp_relay.received
    assert received.rcpt_tos == ["bob@example.net", "c@example.net"]
    assert received.content == message.replace(b"\nlast", b"\r\nlast") + b"\r\n"  # dot-stuffing undone by the server


@both_ways
async def test_a_sender_refused_with_5xx_is_a_result_and_no_recipient_is_a_bounce(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.mail_reply = "550 5.7.1 sender refused"
    relay = _relay(tmp_path, smtp_relay.url)
    try:
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        smtp_relay.behaviour.mail_reply = None
        sessions = smtp_relay.sessions
        after = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    # Pipelined, RCPT and DATA were answered 503 (no sender): that says nothing about the recipient.
    assert result == RelayResult(accepted=[], rejected={}, response="550 5.7.1 sender refused")
    assert after.accepted == ["bob@example.net"] and smtp_relay.sessions == sessions  # RSET, same connection
    assert len(smtp_relay.received) == 1


@both_ways
async def test_a_sender_deferred_with_4xx_is_a_temporary_failure(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.mail_reply = "451 4.3.0 try later"
    relay = _relay(tmp_path, smtp_relay.url)
    try:
        with pytest.raises(RelayTemporaryFailure, match="451 4.3.0 try later"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert smtp_relay.received == [] and smtp_relay.data_without_recipients == []


@both_ways
async def test_one_deferred_recipient_defers_everyone_and_no_empty_message_goes_out(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.refuse["carol@example.net"] = "451 4.7.1 greylisted"
    relay = _relay(tmp_path, smtp_relay.url, relay_pool_size=1)
    both = ["bob@example.net", "carol@example.net"]
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        sessions = smtp_relay.sessions
        with pytest.raises(RelayTemporaryFailure, match=r"451 4.7.1 greylisted \(carol@example.net\)"):
            await relay.send(sender="ann@example.com", recipients=both, message=MESSAGE)
        await asyncio.sleep(0.05)  # the server takes in whatever came
        smtp_relay.reset()
        result = await relay.send(sender="ann@example.com", recipients=both, message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == both and [r.rcpt_tos for r in smtp_relay.received] == [both]
    # Pipelined, DATA was answered 354 (bob was accepted): a lone dot would have delivered bob an
    # empty message, so the connection was dropped instead of reset.
    assert smtp_relay.sessions == sessions + (1 if pipelining else 0)


@both_ways
async def test_every_recipient_refused_while_the_server_still_answers_data_with_354(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.data_without_recipients = True  # RFC 2920 §3.1: a client may not assume DATA fails
    smtp_relay.behaviour.refuse.update({"x@example.net": "550 5.1.1 unknown", "y@example.net": "553 5.1.3 bad"})
    relay = _relay(tmp_path, smtp_relay.url)
    try:
        result = await relay.send(
            sender="ann@example.com", recipients=["x@example.net", "y@example.net"], message=MESSAGE
        )
        sessions = smtp_relay.sessions
        after = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result == RelayResult(
        accepted=[],
        rejected={"x@example.net": (550, "5.1.1 unknown"), "y@example.net": (553, "5.1.3 bad")},
        response="553 5.1.3 bad",
    )
    # Pipelined: the data phase was ended with a lone dot (an empty transaction), never with the message.
    assert smtp_relay.data_without_recipients == ([b""] if pipelining else [])
    assert [r.rcpt_tos for r in smtp_relay.received] == [["bob@example.net"]]
    assert after.accepted == ["bob@example.net"] and smtp_relay.sessions == sessions


@both_ways
@pytest.mark.parametrize("reply", ["554 5.6.0 content refused", "451 4.3.0 queue full"])
async def test_the_message_refused_at_the_end_of_data(smtp_relay, tmp_path, pipelining, reply):
    smtp_relay.behaviour.pipelining = pipelining
    smtp_relay.behaviour.data_reply = reply
    relay = _relay(tmp_path, smtp_relay.url)
    try:
        if reply.startswith("5"):
            result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
            assert result == RelayResult(accepted=[], response=reply)
        else:
            with pytest.raises(RelayTemporaryFailure, match=reply):
                await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert smtp_relay.received == []


@both_ways
@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "unnoticed"])
async def test_a_connection_closed_while_idle_is_replaced_and_the_message_sent_once(
    smtp_relay, tmp_path, pipelining, noticed
):
    smtp_relay.behaviour.pipelining = pipelining
    relay = _relay(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        sessions = smtp_relay.sessions
        smtp_relay.drop_connections()
        if noticed:
            await asyncio.sleep(0.05)
        # Unnoticed: the group (or MAIL) is written to a socket the server already closed, and the
        # failure only shows when reading the first reply.
        result = await relay.send(sender="ann@example.com", recipients=["carol@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["carol@example.net"]
    assert [r.rcpt_tos for r in smtp_relay.received] == [["bob@example.net"], ["carol@example.net"]]
    assert smtp_relay.sessions == sessions + 1


@both_ways
async def test_a_drop_at_mail_is_retried_once_and_a_drop_after_a_reply_is_not(smtp_relay, tmp_path, pipelining):
    smtp_relay.behaviour.pipelining = pipelining
    relay = _relay(tmp_path, smtp_relay.url, relay_pool_size=1)
    try:
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        smtp_relay.reset()
        smtp_relay.behaviour.pipelining = pipelining
        smtp_relay.behaviour.drop_at = "mail"  # no reply at all: could be a connection closed while idle
        with pytest.raises(RelayTemporaryFailure, match="closed the connection"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        assert smtp_relay.commands == ["MAIL", "MAIL"]  # the pooled connection, then a fresh one

        smtp_relay.behaviour.drop_at = None
        await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)  # pool one again
        smtp_relay.reset()
        smtp_relay.behaviour.pipelining = pipelining
        smtp_relay.behaviour.drop_at = "rcpt"  # MAIL was answered, then the connection dropped before DATA's reply
        with pytest.raises(RelayTemporaryFailure, match="connection"):
            await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
        assert smtp_relay.commands == ["MAIL"]  # a session that died mid-transaction is not retried here
        smtp_relay.behaviour.drop_at = None
        result = await relay.send(sender="ann@example.com", recipients=["bob@example.net"], message=MESSAGE)
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net"] and len(smtp_relay.received) == 1


# --- pipelined replies however they arrive: a scripted server ------------------------------------
class ScriptedServer:
    """Offers PIPELINING and answers a group only once it has read all of it, up to DATA: a client
    that waited for MAIL's reply before sending RCPT would hang. Writes its replies `chunk` bytes at
    a time (None: all at once), the RCPT replies on two lines."""

    def __init__(self, chunk: int | None, rcpt_reply: bytes = b"250-2.1.5 first line\r\n250 2.1.5 Ok\r\n"):
        self.chunk = chunk
        self.rcpt_reply = rcpt_reply
        self.groups: list[list[bytes]] = []
        self.messages: list[bytes] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        step = self.chunk or len(data)
        for start in range(0, len(data), step):
            writer.write(data[start : start + step])
            await writer.drain()
            await asyncio.sleep(0)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 scripted ESMTP\r\n")
            await reader.readline()
            await self._write(writer, b"250-scripted\r\n250-PIPELINING\r\n250 SIZE 10000000\r\n")
            while True:
                group = []
                while not group or group[-1] != b"DATA\r\n":
                    line = await reader.readline()
                    if not line or line == b"QUIT\r\n":
                        writer.write(b"221 bye\r\n")
                        return
                    group.append(line)
                self.groups.append(group)
                await self._write(
                    writer, b"250 2.1.0 Ok\r\n" + self.rcpt_reply * (len(group) - 2) + b"354 go ahead\r\n"
                )
                self.messages.append(await reader.readuntil(b"\r\n.\r\n"))
                await self._write(writer, b"250-2.0.0 Ok\r\n250 2.0.0 queued as X\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("chunk", [None, 1, 7], ids=["together", "byte-by-byte", "7-bytes"])
async def test_pipelined_replies_are_read_however_they_arrive(tmp_path, chunk):
    server = ScriptedServer(chunk)
    port = await server.start()
    relay = _relay(tmp_path, f"smtp://127.0.0.1:{port}", relay_timeout_seconds=5)
    try:
        for n in range(3):
            recipients = ["a@example.net", f"b{n}@example.net"]
            result = await relay.send(sender="ann@example.com", recipients=recipients, message=MESSAGE)
            assert result.accepted == ["a@example.net", f"b{n}@example.net"]
            assert result.response == "250 2.0.0 Ok\n2.0.0 queued as X"
        assert _pipelined(relay)
    finally:
        await relay.close()
        await server.stop()
    assert server.groups[0] == [
        f"MAIL FROM:<ann@example.com> SIZE={len(MESSAGE)}\r\n".encode(),
        b"RCPT TO:<a@example.net>\r\n",
        b"RCPT TO:<b0@example.net>\r\n",
        b"DATA\r\n",
    ]
    assert len(server.groups) == 3 and server.messages == [MESSAGE + b".\r\n"] * 3


async def test_a_malformed_pipelined_reply_discards_the_connection(tmp_path):
    server = ScriptedServer(None, rcpt_reply=b"2X0 what\r\n")
    port = await server.start()
    relay = _relay(tmp_path, f"smtp://127.0.0.1:{port}", relay_timeout_seconds=5)
    try:
        with pytest.raises(RelayTemporaryFailure, match="Malformed"):
            await relay.send(sender="ann@example.com", recipients=["a@example.net"], message=MESSAGE)
        assert relay._idle == []
    finally:
        await relay.close()
        await server.stop()
    assert server.messages == []


def test_pipelining_under_uvloop(certificate, tmp_path):
    """The service runs on uvloop, whose transports bind a protocol's methods when it is set."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[RelayResult]:
        results = []
        for server in (SmtpTestRelay(), SmtpTestRelay(tls=certificate, implicit_tls=True)):
            await server.start()
            scheme = "smtps" if server._implicit_tls else "smtp"
            relay = _relay(tmp_path, f"{scheme}://127.0.0.1:{server.port}?cafile={quote(str(certificate[0]))}")
            try:
                results += await asyncio.gather(
                    *(
                        relay.send(sender="ann@example.com", recipients=[f"r{n}@example.net"], message=MESSAGE)
                        for n in range(10)
                    )
                )
                assert all(connection.pipeline is not None for connection in relay._idle)
                server.drop_connections()
                results.append(
                    await relay.send(sender="ann@example.com", recipients=["z@example.net"], message=MESSAGE)
                )
            finally:
                await relay.close()
                await server.stop()
            assert len(server.received) == 11
        return results

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        results = thread.submit(uvloop.run, scenario()).result(timeout=30)
    assert len(results) == 22 and all(r.response.startswith("250") for r in results)
