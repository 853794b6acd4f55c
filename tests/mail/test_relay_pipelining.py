"""PIPELINING (RFC 2920): the setting that turns it off, replies however they arrive (a scripted
server), malformed replies, and uvloop, whose transports the pipeline reader must work with."""

from __future__ import annotations

import asyncio
import concurrent.futures
from urllib.parse import quote

import pytest

from orgmail.mail.relay import RelayOutcomeUnknown, RelayResult, RelayTemporaryFailure
from tests.smtp_relay import MESSAGE, SmtpTestRelay, make_certificate, pipelined, relay_to


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("setting", ["1", "0"], ids=["on", "off"])
async def test_orgmail_relay_pipelining_0_sends_one_command_at_a_time(smtp_relay, tmp_path, setting):
    relay = relay_to(tmp_path, smtp_relay.url, {"ORGMAIL_RELAY_PIPELINING": setting}, relay_pool_size=1)
    try:
        result = await relay.send(
            sender="ann@example.com", recipients=["bob@example.net", "c@example.net"], message=MESSAGE
        )
        assert pipelined(relay) is (setting == "1")  # the relay offers it either way
    finally:
        await relay.close()
    assert result.accepted == ["bob@example.net", "c@example.net"] and len(smtp_relay.received) == 1
    [arrival] = smtp_relay.mail_arrivals  # what came in the same piece of input as MAIL FROM
    verbs = [line.split(b" ")[0] for line in arrival.splitlines()]
    assert verbs == ([b"MAIL", b"RCPT", b"RCPT", b"DATA"] if setting == "1" else [b"MAIL"])


# --- pipelined replies however they arrive: a scripted server ------------------------------------
class ScriptedServer:
    """Offers PIPELINING and answers a group only once it has read all of it, up to DATA: a client
    that waited for MAIL's reply before sending RCPT would hang. Writes its replies `chunk` bytes at
    a time (None: all at once), the RCPT replies on two lines."""

    def __init__(
        self,
        chunk: int | None,
        rcpt_reply: bytes = b"250-2.1.5 first line\r\n250 2.1.5 Ok\r\n",
        final_reply: bytes = b"250-2.0.0 Ok\r\n250 2.0.0 queued as X\r\n",
    ):
        self.chunk = chunk
        self.rcpt_reply = rcpt_reply
        self.final_reply = final_reply
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
                await self._write(writer, self.final_reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("chunk", [None, 1, 7], ids=["together", "byte-by-byte", "7-bytes"])
async def test_pipelined_replies_are_read_however_they_arrive(tmp_path, chunk):
    server = ScriptedServer(chunk)
    port = await server.start()
    relay = relay_to(tmp_path, f"smtp://127.0.0.1:{port}", relay_timeout_seconds=5)
    try:
        for n in range(3):
            recipients = ["a@example.net", f"b{n}@example.net"]
            result = await relay.send(sender="ann@example.com", recipients=recipients, message=MESSAGE)
            assert result.accepted == ["a@example.net", f"b{n}@example.net"]
            assert result.response == "250 2.0.0 Ok\n2.0.0 queued as X"
        assert pipelined(relay)
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
    relay = relay_to(tmp_path, f"smtp://127.0.0.1:{port}", relay_timeout_seconds=5)
    try:
        with pytest.raises(RelayTemporaryFailure, match="Malformed"):
            await relay.send(sender="ann@example.com", recipients=["a@example.net"], message=MESSAGE)
        assert relay._idle == []
    finally:
        await relay.close()
        await server.stop()
    assert server.messages == []


async def test_a_malformed_reply_to_the_end_of_the_message_leaves_the_outcome_unknown(tmp_path):
    server = ScriptedServer(None, final_reply=b"2X0 what\r\n")
    port = await server.start()
    relay = relay_to(tmp_path, f"smtp://127.0.0.1:{port}", relay_timeout_seconds=5)
    try:
        with pytest.raises(RelayOutcomeUnknown, match="Malformed"):
            await relay.send(sender="ann@example.com", recipients=["a@example.net"], message=MESSAGE)
        assert relay._idle == []
    finally:
        await relay.close()
        await server.stop()
    assert server.messages == [MESSAGE + b".\r\n"]


def test_pipelining_under_uvloop(certificate, tmp_path):
    """The service runs on uvloop, whose transports bind a protocol's methods when it is set."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[RelayResult]:
        results = []
        for server in (SmtpTestRelay(), SmtpTestRelay(tls=certificate, implicit_tls=True)):
            await server.start()
            scheme = "smtps" if server._implicit_tls else "smtp"
            relay = relay_to(tmp_path, f"{scheme}://127.0.0.1:{server.port}?cafile={quote(str(certificate[0]))}")
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
