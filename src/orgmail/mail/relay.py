"""Relays: where a signed message goes next. `SmtpRelay` (a smarthost over a pool of persistent
aiosmtplib connections) and `OutboxRelay` (the embedded default: `.eml` files in the data folder).

Results are values: a recipient refused with a 5xx is data in `RelayResult.rejected`, and a message
refused as a whole (5xx to MAIL FROM or DATA) is a result with nobody accepted. Only what leaves the
outcome open for a retry is an exception: `RelayTemporaryFailure` (relay down, a 4xx, a dropped
connection, a timeout). It is raised only when the relay has not taken the message: an SMTP server
takes responsibility for a message with its reply to the end of DATA (RFC 5321 §4.1.1.4), and a 4xx
for one recipient aborts the whole transaction (RSET) so a retry can never deliver to anyone twice.

When the server offers PIPELINING (RFC 2920), MAIL FROM, every RCPT TO and DATA go out in one write
and the message in a second one, once DATA was answered 354: two writes and two waits per message
instead of four. The outcomes are the same as one command at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import (
    COMMAND_INJECTION_REGEX,
    MAX_RESPONSE_LENGTH,
    PERIOD_REGEX,
    SMTPProtocol,
    normalize_message_line_endings,
)
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import SMTPStatus

from orgmail.config import Settings

log = logging.getLogger("orgmail.relay")


@dataclass(frozen=True)
class RelayResult:
    accepted: list[str]
    rejected: dict[str, tuple[int, str]] = field(default_factory=dict)  # address -> (5xx code, text)
    response: str = ""  # the relay's last reply: "250 2.0.0 queued as …", or the refusal


class RelayTemporaryFailure(Exception):
    """The relay did not take the message (down, 4xx, connection lost, timeout): safe to retry."""


class Relay(Protocol):
    async def send(self, *, sender: str, recipients: list[str], message: bytes) -> RelayResult: ...

    async def close(self) -> None: ...


# --- the embedded default ------------------------------------------------------------------------
class OutboxRelay:
    """Writes each message to `<outbox>/<Message-ID>.eml`: written to a temporary file, flushed to
    disk, then renamed, so a reader never sees half a message."""

    def __init__(self, directory: Path):
        self.directory = directory

    async def send(self, *, sender: str, recipients: list[str], message: bytes) -> RelayResult:
        path = await asyncio.to_thread(self._write, message)
        return RelayResult(accepted=list(recipients), response=f"250 written to {path}")

    def _write(self, message: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{_file_name(message)}.eml"
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(message)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    async def close(self) -> None:
        return None


def _file_name(message: bytes) -> str:
    """The Message-ID without its brackets, made safe as a file name."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(message, headersonly=True)
    message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
    safe = "".join(ch if ch.isalnum() or ch in "._@+-" else "_" for ch in message_id)
    return safe or f"message-{os.urandom(8).hex()}"


# --- SMTP smarthost ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    use_tls: bool  # smtps:// (implicit TLS)
    start_tls: bool  # smtp+starttls:// (required, not opportunistic)
    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None


class SmtpRelay:
    """A bounded pool of persistent SMTP connections.

    A send borrows an idle connection (or opens one while under the bound), runs one transaction
    and hands it back. A connection the server closed while idle fails before the server answered
    anything, and before any part of the message went out (the message only follows a 354 to DATA),
    so it is replaced and the transaction re-run once.
    """

    def __init__(self, target: SmtpTarget, *, pool_size: int = 4, timeout: float = 30.0):
        self.target = target
        self.timeout = timeout
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []

    async def send(self, *, sender: str, recipients: list[str], message: bytes) -> RelayResult:
        try:
            async with asyncio.timeout(self.timeout):
                async with self._slots:
                    return await self._send_pooled(sender, recipients, message)
        except TimeoutError:
            raise RelayTemporaryFailure(f"the relay did not answer within {self.timeout:g} s") from None

    async def _send_pooled(self, sender: str, recipients: list[str], message: bytes) -> RelayResult:
        connection = self._idle.pop() if self._idle else None
        fresh = connection is None
        try:
            if connection is None:
                connection = await self._connect()
            try:
                return await _transaction(connection, sender, recipients, message)
            except _StaleConnection:
                if fresh:
                    raise
                connection.close()
                connection = None
                connection = await self._connect()
                return await _transaction(connection, sender, recipients, message)
        except RelayTemporaryFailure:
            raise  # a 4xx after RSET leaves the connection usable; a failed connect left none
        except _StaleConnection:
            connection = _discard(connection)
            raise RelayTemporaryFailure("the relay closed the connection") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            connection = _discard(connection)
            raise RelayTemporaryFailure(f"relay connection failed: {exc}") from None
        except BaseException:
            # Cancelled or timed out mid-transaction: the session state is unknown, never reuse it.
            connection = _discard(connection)
            raise
        finally:
            if connection is not None and connection.is_connected:
                self._idle.append(connection)

    async def _connect(self) -> _Connection:
        target = self.target
        connection = _Connection(
            hostname=target.hostname,
            port=target.port,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            username=target.username,
            password=target.password,
            tls_context=target.tls_context,
            timeout=self.timeout,
        )
        try:
            await connection.connect()
            await connection.greet()
        except aiosmtplib.SMTPAuthenticationError as exc:
            connection.close()
            raise RelayTemporaryFailure(f"the relay refused our credentials: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            connection.close()
            raise RelayTemporaryFailure(f"cannot reach the relay: {exc}") from None
        except BaseException:
            connection.close()
            raise
        return connection

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await asyncio.wait_for(connection.quit(), timeout=2)
            except Exception:  # closing anyway; a relay that is gone needs no goodbye
                connection.close()


def _discard(connection: aiosmtplib.SMTP | None) -> None:
    if connection is not None:
        connection.close()
    return None


class _StaleConnection(Exception):
    """The connection was closed by the server before it answered anything of this transaction."""


# --- one connection, with or without PIPELINING --------------------------------------------------
class _Connection(aiosmtplib.SMTP):
    """aiosmtplib's SMTP client, plus groups of commands in one write once the server offers
    PIPELINING (RFC 2920)."""

    pipeline: _PipelineReader | None = None

    async def greet(self) -> None:
        """Say EHLO now if connecting did not (plain connections without AUTH only do at their first
        command): the extensions decide how the first transaction runs. Pipeline if offered."""
        if self.is_ehlo_or_helo_needed:
            try:
                await self.ehlo()
            except aiosmtplib.SMTPHeloError:
                await self.helo()
        if self.supports_extension("pipelining") and self.protocol is not None and self.protocol.transport:
            self.pipeline = _PipelineReader(self.protocol)
            self.protocol.transport.set_protocol(self.pipeline)

    async def exchange(self, data: bytes, replies: int) -> list[SMTPResponse]:
        """Write `data` (a group of commands, or the message) at once; return its `replies` replies."""
        assert self.pipeline is not None
        return await self.pipeline.exchange(data, replies, timeout=self.timeout)


class _PipelineCutShort(aiosmtplib.SMTPServerDisconnected):
    """The connection ended before every reply to a group of commands arrived."""

    def __init__(self, replies_received: int):
        super().__init__(f"Connection lost after {replies_received} replies to a command group")
        self.replies_received = replies_received


class _PipelineReader(asyncio.Protocol):
    """Reads the replies to a group of commands written at once.

    aiosmtplib expects one reply per command written: its protocol hands over one reply per chunk
    received and drops what arrives while that reply waits to be picked up, so the replies to a
    group, which tend to arrive together, would be left unparsed or lost. This reader stands between
    the transport and aiosmtplib's protocol. While `exchange` waits, it parses every reply as it
    arrives, with aiosmtplib's own buffer and parser; otherwise it passes everything through, so
    aiosmtplib's own commands (RSET, QUIT) and its connection-lost handling work unchanged.
    """

    def __init__(self, smtp: SMTPProtocol):
        self._smtp = smtp
        self._expected = 0
        self._replies: list[SMTPResponse] = []
        self._waiter: asyncio.Future[None] | None = None

    async def exchange(self, data: bytes, replies: int, timeout: float | None) -> list[SMTPResponse]:
        self._expected, self._replies = replies, []
        self._waiter = asyncio.get_running_loop().create_future()
        del self._smtp._buffer[:]  # what came unasked is no reply to this group (aiosmtplib drops it too)
        try:
            try:
                self._smtp.write(data)
            except aiosmtplib.SMTPServerDisconnected:
                raise _PipelineCutShort(0) from None
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from None
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
            self._fail(_PipelineCutShort(len(self._replies)))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()  # retrieved, even if the exchange was cancelled meanwhile


# --- one transaction -----------------------------------------------------------------------------
async def _transaction(connection: _Connection, sender: str, recipients: list[str], message: bytes) -> RelayResult:
    if not connection.is_connected:
        raise _StaleConnection()  # the server closed it while it was idle, and we noticed
    if connection.pipeline is not None:
        return await _pipelined_transaction(connection, sender, recipients, message)
    return await _transaction_one_command_at_a_time(connection, sender, recipients, message)


def _mail_options(connection: aiosmtplib.SMTP, message: bytes) -> list[str]:
    return [f"SIZE={len(message)}"] if connection.supports_extension("size") else []


async def _transaction_one_command_at_a_time(
    connection: aiosmtplib.SMTP, sender: str, recipients: list[str], message: bytes
) -> RelayResult:
    try:
        await connection.mail(sender, options=_mail_options(connection, message))
    except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
        raise _StaleConnection() from None
    except aiosmtplib.SMTPSenderRefused as exc:
        await _reset(connection)
        if exc.code >= 500:
            return RelayResult(accepted=[], response=f"{exc.code} {exc.message}")
        raise RelayTemporaryFailure(f"{exc.code} {exc.message}") from None

    accepted: list[str] = []
    rejected: dict[str, tuple[int, str]] = {}
    for recipient in recipients:
        try:
            await connection.rcpt(recipient)
            accepted.append(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            if exc.code < 500:
                # One deferred recipient defers the message: nobody gets it now, everybody on retry.
                await _reset(connection)
                raise RelayTemporaryFailure(f"{exc.code} {exc.message} ({recipient})") from None
            rejected[recipient] = (exc.code, exc.message)
    if not accepted:
        await _reset(connection)
        last_code, last_text = list(rejected.values())[-1]
        return RelayResult(accepted=[], rejected=rejected, response=f"{last_code} {last_text}")

    try:
        reply = await connection.data(message)
    except aiosmtplib.SMTPDataError as exc:
        await _reset(connection)
        if exc.code >= 500:
            return RelayResult(accepted=[], response=f"{exc.code} {exc.message}")
        raise RelayTemporaryFailure(f"{exc.code} {exc.message}") from None
    return RelayResult(accepted=accepted, rejected=rejected, response=f"{reply.code} {reply.message}")


_RECIPIENT_OK = (SMTPStatus.completed, SMTPStatus.will_forward)  # 250, 251: as aiosmtplib's rcpt()


async def _pipelined_transaction(
    connection: _Connection, sender: str, recipients: list[str], message: bytes
) -> RelayResult:
    """MAIL, every RCPT and DATA in one write, their replies read in order; the message follows in a
    second write only if MAIL and every RCPT were answered without a 4xx, someone was accepted and
    DATA got 354. The replies are judged in the order a one-command-at-a-time session meets them,
    so every outcome is the same as there."""
    options = [option.encode("ascii") for option in _mail_options(connection, message)]
    group = [_command(b"MAIL", b"FROM:" + _address(sender), *options)]
    group += [_command(b"RCPT", b"TO:" + _address(recipient)) for recipient in recipients]
    group.append(b"DATA\r\n")
    try:
        mail_reply, *rcpt_replies, data_reply = await connection.exchange(b"".join(group), len(group))
    except _PipelineCutShort as exc:
        if exc.replies_received == 0:
            # Closed before answering anything (while idle, or at MAIL): no message went out.
            raise _StaleConnection() from None
        raise

    accepted: list[str] = []
    rejected: dict[str, tuple[int, str]] = {}
    deferred: tuple[str, SMTPResponse] | None = None
    if mail_reply.code == SMTPStatus.completed:
        for recipient, reply in zip(recipients, rcpt_replies, strict=True):
            if reply.code in _RECIPIENT_OK:
                accepted.append(recipient)
            elif reply.code < 500:
                deferred = deferred or (recipient, reply)
            else:
                rejected[recipient] = (reply.code, reply.message)
        if accepted and deferred is None and data_reply.code == SMTPStatus.start_input:
            [reply] = await connection.exchange(_data_content(message), 1)
            if reply.code == SMTPStatus.completed:
                return RelayResult(accepted=accepted, rejected=rejected, response=f"{reply.code} {reply.message}")
            await _reset(connection)
            return _refused_message(reply)

    # The message will not go out.
    if data_reply.code == SMTPStatus.start_input:
        await _leave_data_phase(connection, anyone_accepted=any(r.code in _RECIPIENT_OK for r in rcpt_replies))
    await _reset(connection)
    if mail_reply.code != SMTPStatus.completed:
        return _refused_message(mail_reply)
    if deferred is not None:
        # One deferred recipient defers the message: nobody gets it now, everybody on retry.
        recipient, reply = deferred
        raise RelayTemporaryFailure(f"{reply.code} {reply.message} ({recipient})")
    if not accepted:
        last_code, last_text = list(rejected.values())[-1]
        return RelayResult(accepted=[], rejected=rejected, response=f"{last_code} {last_text}")
    return _refused_message(data_reply)


async def _leave_data_phase(connection: _Connection, *, anyone_accepted: bool) -> None:
    """DATA got 354 but the message will not follow. RFC 2920 §3.1 warns that a server may accept
    DATA after refusing every RCPT, and says to send a single dot then: with nobody accepted, that
    ends an empty transaction that delivers nothing. With someone accepted (and another recipient
    deferred), the same dot would deliver them an empty message, so the connection is dropped
    instead: a server takes no message whose end of data never came."""
    if anyone_accepted:
        connection.close()
        return
    try:
        await connection.exchange(b".\r\n", 1)  # its reply, a refusal or not, changes nothing
    except (aiosmtplib.SMTPException, OSError):
        connection.close()


def _refused_message(reply: SMTPResponse) -> RelayResult:
    """MAIL FROM or DATA not accepted: a 5xx is a result with nobody accepted, anything else a
    temporary failure."""
    if reply.code >= 500:
        return RelayResult(accepted=[], response=f"{reply.code} {reply.message}")
    raise RelayTemporaryFailure(f"{reply.code} {reply.message}")


def _address(address: str) -> bytes:
    return quote_address(address).encode("ascii")  # as aiosmtplib's mail() and rcpt() send it


def _command(*parts: bytes) -> bytes:
    """One command line; refused, as aiosmtplib refuses it, if a part holds a control character."""
    for part in parts:
        if COMMAND_INJECTION_REGEX.search(part):
            raise ValueError("Command arg contains a prohibited control character")
    return b" ".join(parts) + b"\r\n"


def _data_content(message: bytes) -> bytes:
    """The message as aiosmtplib's data() sends it: CRLF line endings, dot-stuffed, ended by a dot."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


async def _reset(connection: aiosmtplib.SMTP) -> None:
    if not connection.is_connected:
        return
    try:
        await connection.rset()
    except (aiosmtplib.SMTPException, OSError):
        connection.close()


# --- choosing one --------------------------------------------------------------------------------
_SCHEMES = {
    "smtp": (25, False, False),
    "smtp+starttls": (587, False, True),
    "smtps": (465, True, False),
}


def smtp_target_from_url(url: str) -> SmtpTarget:
    """`smtp://`, `smtp+starttls://` or `smtps://`, with optional `user:pass@` and, for private
    certificate authorities, `?cafile=/path/ca.pem` (or `?verify=false`, for development only)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(f"unsupported relay URL {url!r}: use outbox, smtp://, smtp+starttls:// or smtps://")
    default_port, use_tls, start_tls = _SCHEMES[parts.scheme]
    query = parse_qs(parts.query)
    tls_context = None
    if use_tls or start_tls:
        cafile = query.get("cafile", [None])[0]
        tls_context = ssl.create_default_context(cafile=cafile)
        if query.get("verify", ["true"])[0].lower() in ("false", "0", "no"):
            tls_context.check_hostname = False
            tls_context.verify_mode = ssl.CERT_NONE
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or default_port,
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls_context=tls_context,
    )


def relay_from_url(settings: Settings) -> Relay:
    """The relay `ORGMAIL_RELAY_URL` names: `outbox` (the default) or an SMTP smarthost."""
    url = settings.relay_url.strip()
    if url.lower() in ("", "outbox"):
        return OutboxRelay(settings.outbox_dir)
    return SmtpRelay(
        smtp_target_from_url(url), pool_size=settings.relay_pool_size, timeout=settings.relay_timeout_seconds
    )
