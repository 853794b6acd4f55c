"""SMTP PIPELINING (RFC 2920) on an aiosmtplib connection: a group of commands in one write, and every
reply to it read as it arrives.

aiosmtplib expects one reply per command written, so this is the one module of orgmail that touches
its internals: it stands a reader between the transport and aiosmtplib's protocol, and reads replies
with that protocol's own buffer and parser (`_buffer`, `_read_response_from_buffer`), its limits and
its check for control characters in commands. aiosmtplib is pinned to 5.x for that; should a release
change them, this is what breaks, and `ORGMAIL_RELAY_PIPELINING=0` sends one command at a time meanwhile.
What the replies mean is decided in `smtp.py`, the same way for both.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, MAX_RESPONSE_LENGTH, SMTPProtocol
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import SMTPStatus


class PipelineCutShort(aiosmtplib.SMTPServerDisconnected):
    """The connection ended before every reply to a group of commands arrived."""

    def __init__(self, replies_received: int):
        super().__init__(f"Connection lost after {replies_received} replies to a command group")
        self.replies_received = replies_received


class Pipeline(asyncio.Protocol):
    """Reads the replies to a group of commands written at once.

    aiosmtplib's protocol hands over one reply per chunk received and drops what arrives while that
    reply waits to be picked up, so the replies to a group, which tend to arrive together, would be
    left unparsed or lost. While `exchange` waits, this reader parses every reply as it arrives;
    otherwise it passes everything through, so aiosmtplib's own reads (RSET, QUIT, the reply to the
    end of the message) and its connection-lost handling work unchanged.
    """

    def __init__(self, smtp: SMTPProtocol):
        self._smtp = smtp
        self._expected = 0
        self._replies: list[SMTPResponse] = []
        self._waiter: asyncio.Future[None] | None = None

    @classmethod
    def install(cls, connection: aiosmtplib.SMTP) -> Pipeline | None:
        """Put a reader between the connection's transport and its protocol (None if it is closed)."""
        protocol = connection.protocol
        if protocol is None or protocol.transport is None:
            return None
        pipeline = cls(protocol)
        protocol.transport.set_protocol(pipeline)
        return pipeline

    async def exchange(self, data: bytes, replies: int) -> list[SMTPResponse]:
        """Write `data` (a group of commands) at once; return its `replies` replies, in order. No
        timeout of its own: the send's deadline covers it."""
        self._expected, self._replies = replies, []
        self._waiter = asyncio.get_running_loop().create_future()
        del self._smtp._buffer[:]  # what came unasked is no reply to this group (aiosmtplib drops it too)
        try:
            try:
                self._smtp.write(data)
            except aiosmtplib.SMTPServerDisconnected:
                raise PipelineCutShort(0) from None
            await self._waiter
        finally:
            self._waiter = None
        return self._replies

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._smtp.data_received(data)
            return
        buffer = self._smtp._buffer
        buffer.extend(data)
        try:
            while len(self._replies) < self._expected:
                reply = self._smtp._read_response_from_buffer()
                if reply is None:
                    break
                self._replies.append(reply)
        except aiosmtplib.SMTPResponseException as exc:  # a malformed or overlong reply line
            self._fail(exc)
            return
        if len(self._replies) == self._expected:
            del buffer[:]  # nothing more was asked for
            waiter.set_result(None)
        elif len(buffer) > MAX_RESPONSE_LENGTH:
            self._fail(aiosmtplib.SMTPResponseException(SMTPStatus.invalid_response.value, "Response too long"))

    def eof_received(self) -> bool | None:
        self._cut_short()
        return self._smtp.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cut_short()
        self._smtp.connection_lost(exc)

    def pause_writing(self) -> None:
        self._smtp.pause_writing()

    def resume_writing(self) -> None:
        self._smtp.resume_writing()

    def _cut_short(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._fail(PipelineCutShort(len(self._replies)))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()  # retrieved, even if the exchange was cancelled meanwhile


def command_group(sender: str, mail_options: list[str], recipients: list[tuple[str, list[str]]]) -> bytes:
    """MAIL FROM with its options, one RCPT TO per (recipient, options) and DATA, as aiosmtplib's
    `mail()`, `rcpt()` and `data()` would send them one by one."""
    group = [_command(b"MAIL", b"FROM:" + _address(sender), *_options(mail_options))]
    group += [_command(b"RCPT", b"TO:" + _address(recipient), *_options(options)) for recipient, options in recipients]
    group.append(b"DATA\r\n")
    return b"".join(group)


def _options(options: list[str]) -> list[bytes]:
    return [option.encode("ascii") for option in options]


def _address(address: str) -> bytes:
    return quote_address(address).encode("ascii")


def _command(*parts: bytes) -> bytes:
    """One command line; refused, as aiosmtplib refuses it, if a part holds a control character."""
    for part in parts:
        if COMMAND_INJECTION_REGEX.search(part):
            raise ValueError("Command arg contains a prohibited control character")
    return b" ".join(parts) + b"\r\n"
