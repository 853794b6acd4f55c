"""`SmtpRelay`: a smarthost over a bounded pool of persistent aiosmtplib connections, and the rules that
turn the replies of an SMTP transaction into a `RelayResult` or one of the two failures.

A transaction runs one command at a time, or, when the server offers PIPELINING (RFC 2920) and
`pipelining` is on, as MAIL FROM, every RCPT TO and DATA in one write (`pipelining.py` does the
wire side) and the message once DATA was answered 354. The outcomes are the same either way.

A send that carries a `DsnRequest` asks for delivery status notifications (RFC 3461) only when the
server's EHLO offers DSN: `RET` and `ENVID` on MAIL, `NOTIFY` and `ORCPT` on each RCPT. A server that
does not offer it gets the plain commands, since it may refuse parameters it does not know (555).

One deadline, `timeout`, covers a whole send: waiting for a pooled connection, connect, EHLO,
STARTTLS, AUTH, MAIL, RCPT, DATA, the message and the reply to its end. The connections have no
timeouts of their own, so a relay that answers each command just in time cannot stretch a send past
it, and no send outlives it (the start-up sweep of `queued` rows relies on that).

Once the message and its end-of-data dot are written, a reply that never comes (the connection lost,
the deadline passed) raises `RelayOutcomeUnknown`: the relay may have read it all and queued it
(RFC 1047). Until then every failure is a `RelayTemporaryFailure`, since the relay takes nothing
whose end it did not read.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus
from aiosmtplib.email import parse_address

from orgmail.mail.relay import DsnRequest, RelayOutcomeUnknown, RelayResult, RelayTemporaryFailure
from orgmail.mail.relay.pipelining import Pipeline, PipelineCutShort, command_group
from orgmail.mail.relay.xtext import encode_xtext


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
    so it is replaced and the transaction re-run once. A connection left mid-transaction (a timeout,
    a lost reply) is closed, never reused.
    """

    def __init__(self, target: SmtpTarget, *, pool_size: int = 4, timeout: float = 30.0, pipelining: bool = True):
        self.target = target
        self.timeout = timeout
        self.pipelining = pipelining  # when the server offers it
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []

    async def send(
        self, *, sender: str, recipients: list[str], message: bytes, dsn: DsnRequest | None = None
    ) -> RelayResult:
        envelope = _Envelope(sender, recipients, message, dsn)
        progress = _Progress()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._slots:
                    return await self._send_pooled(envelope, progress)
        except TimeoutError:
            if progress.outcome_open:
                raise RelayOutcomeUnknown(
                    f"no reply to the end of the message within {self.timeout:g} s: the relay may have queued it"
                ) from None
            raise RelayTemporaryFailure(f"the relay did not answer within {self.timeout:g} s") from None
        except (RelayTemporaryFailure, RelayOutcomeUnknown):
            raise
        except Exception as exc:
            # Our own failure (not the relay's answer) while the relay may hold the whole message: a
            # retry could deliver it twice, so the outcome is unknown, not "failed".
            if progress.outcome_open:
                raise RelayOutcomeUnknown(f"the reply to the end of the message was not read: {exc!r}") from exc
            raise

    async def _send_pooled(self, envelope: _Envelope, progress: _Progress) -> RelayResult:
        reused = bool(self._idle)
        connection = self._idle.pop() if reused else await self._connect()
        try:
            try:
                return await _transaction(connection, envelope, progress)
            except _StaleConnection:
                if not reused:
                    raise
                connection.close()
                connection = await self._connect()
                return await _transaction(connection, envelope, progress)
        except (RelayTemporaryFailure, RelayOutcomeUnknown):
            raise  # a 4xx after RSET leaves the connection usable; anything else closed it
        except _StaleConnection:
            connection.close()
            raise RelayTemporaryFailure("the relay closed the connection") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            connection.close()
            raise RelayTemporaryFailure(f"relay connection failed: {exc}") from None
        except BaseException:
            # Cancelled or timed out mid-transaction: the session state is unknown, never reuse it.
            progress.no_reply()
            connection.close()
            raise
        finally:
            if connection.is_connected:
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
            timeout=None,  # the send's deadline covers every step
        )
        try:
            await connection.connect()
            await connection.greet(pipelining=self.pipelining)
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


class _Connection(aiosmtplib.SMTP):
    """aiosmtplib's SMTP client, with a `Pipeline` once the server offers PIPELINING and we use it."""

    pipeline: Pipeline | None = None

    async def greet(self, *, pipelining: bool) -> None:
        """Say EHLO now if connecting did not (plain connections without AUTH only do at their first
        command): the extensions decide how the first transaction runs."""
        if self.is_ehlo_or_helo_needed:
            try:
                await self.ehlo()
            except aiosmtplib.SMTPHeloError:
                await self.helo()
        if pipelining and self.supports_extension("pipelining"):
            self.pipeline = Pipeline.install(self)


class _StaleConnection(Exception):
    """The connection was closed by the server before it answered anything of this transaction."""


class _Progress:
    """Whether the outcome of a send is open: from the moment the whole message, its end-of-data dot
    included, was written until the relay's reply to it was read."""

    def __init__(self) -> None:
        self.outcome_open = False
        self._transport: asyncio.WriteTransport | None = None

    def message_written(self, transport: asyncio.WriteTransport) -> None:
        self.outcome_open, self._transport = True, transport

    def reply_read(self) -> None:
        self.outcome_open, self._transport = False, None

    def no_reply(self) -> None:
        """No reply will be read. Bytes still in our write buffer include the message's last one, so
        the relay has not read its end, and aborting the transport makes sure it never does; the
        outcome is not open then. Otherwise the relay may have read it all (RFC 1047)."""
        if self._transport is None:
            return
        if self._transport.get_write_buffer_size() > 0:
            self.outcome_open = False
        self._transport.abort()


# --- one transaction -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Envelope:
    """What one send hands to a transaction."""

    sender: str
    recipients: list[str]
    message: bytes
    dsn: DsnRequest | None


async def _transaction(connection: _Connection, envelope: _Envelope, progress: _Progress) -> RelayResult:
    if not connection.is_connected:
        raise _StaleConnection()  # the server closed it while it was idle, and we noticed
    if connection.pipeline is not None:
        return await _pipelined_transaction(connection, connection.pipeline, envelope, progress)
    return await _transaction_one_command_at_a_time(connection, envelope, progress)


def _mail_options(connection: aiosmtplib.SMTP, envelope: _Envelope) -> list[str]:
    options = [f"SIZE={len(envelope.message)}"] if connection.supports_extension("size") else []
    dsn = envelope.dsn
    if dsn is not None and connection.supports_extension("dsn"):
        options += [f"RET={dsn.ret}", f"ENVID={encode_xtext(dsn.envid)}"]
    return options


def _rcpt_options(connection: aiosmtplib.SMTP, envelope: _Envelope, recipient: str) -> list[str]:
    dsn = envelope.dsn
    if dsn is None or not connection.supports_extension("dsn"):
        return []
    # ORCPT names the address as RCPT TO carries it (aiosmtplib's own parsing of it), RFC 3461 §4.2.
    return [f"NOTIFY={','.join(dsn.notify)}", f"ORCPT=rfc822;{encode_xtext(parse_address(recipient))}"]


async def _transaction_one_command_at_a_time(
    connection: _Connection, envelope: _Envelope, progress: _Progress
) -> RelayResult:
    recipients, message = envelope.recipients, envelope.message
    try:
        await connection.mail(envelope.sender, options=_mail_options(connection, envelope))
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
            await connection.rcpt(recipient, options=_rcpt_options(connection, envelope, recipient))
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

    data_reply = await connection.execute_command(b"DATA")
    if data_reply.code != SMTPStatus.start_input:
        await _reset(connection)
        return _refused_message(data_reply)
    reply = await _send_message(connection, message, progress)
    return await _end_of_data(connection, reply, accepted, rejected)


_RECIPIENT_OK = (SMTPStatus.completed, SMTPStatus.will_forward)  # 250, 251: as aiosmtplib's rcpt()


async def _pipelined_transaction(
    connection: _Connection, pipeline: Pipeline, envelope: _Envelope, progress: _Progress
) -> RelayResult:
    """MAIL, every RCPT and DATA in one write, their replies read in order; the message follows in a
    second write only if MAIL and every RCPT were answered without a 4xx, someone was accepted and
    DATA got 354. The replies are judged in the order a one-command-at-a-time session meets them,
    so every outcome is the same as there."""
    recipients, message = envelope.recipients, envelope.message
    group = command_group(
        envelope.sender,
        _mail_options(connection, envelope),
        [(recipient, _rcpt_options(connection, envelope, recipient)) for recipient in recipients],
    )
    try:
        mail_reply, *rcpt_replies, data_reply = await pipeline.exchange(group, len(recipients) + 2)
    except PipelineCutShort as exc:
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
            reply = await _send_message(connection, message, progress)
            return await _end_of_data(connection, reply, accepted, rejected)

    # The message will not go out.
    if data_reply.code == SMTPStatus.start_input:
        await _leave_data_phase(
            connection, pipeline, anyone_accepted=any(r.code in _RECIPIENT_OK for r in rcpt_replies)
        )
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


async def _send_message(connection: _Connection, message: bytes, progress: _Progress) -> SMTPResponse:
    """After a 354: write the message and its end-of-data dot, and read the reply to it, with
    aiosmtplib's public protocol API (its `data()` would not tell a reply lost after the dot from
    one lost before). With that reply the relay takes responsibility for the message, or refuses
    it (RFC 5321 §4.1.1.4)."""
    protocol, transport = connection.protocol, connection.transport
    if protocol is None or transport is None:
        raise RelayTemporaryFailure("the relay closed the connection before the message was sent")
    try:
        protocol.write(_data_content(message))
    except aiosmtplib.SMTPServerDisconnected:
        raise RelayTemporaryFailure("the relay closed the connection before the message was sent") from None
    progress.message_written(cast(asyncio.WriteTransport, transport))
    try:
        reply = await protocol.read_response(timeout=None)  # the send's deadline covers it
    except (aiosmtplib.SMTPException, OSError) as exc:
        progress.no_reply()
        connection.close()
        if progress.outcome_open:
            raise RelayOutcomeUnknown(
                f"no reply to the end of the message ({exc}): the relay may have queued it"
            ) from None
        raise RelayTemporaryFailure(f"relay connection failed before the end of the message: {exc}") from None
    progress.reply_read()
    return reply


async def _end_of_data(
    connection: _Connection, reply: SMTPResponse, accepted: list[str], rejected: dict[str, tuple[int, str]]
) -> RelayResult:
    """The relay's reply to the end of the message: taken (250), refused (5xx) or deferred."""
    if reply.code == SMTPStatus.completed:
        return RelayResult(accepted=accepted, rejected=rejected, response=f"{reply.code} {reply.message}")
    await _reset(connection)
    return _refused_message(reply)


async def _leave_data_phase(connection: _Connection, pipeline: Pipeline, *, anyone_accepted: bool) -> None:
    """DATA got 354 but the message will not follow. RFC 2920 §3.1 warns that a server may accept
    DATA after refusing every RCPT, and says to send a single dot then: with nobody accepted, that
    ends an empty transaction that delivers nothing. With someone accepted (and another recipient
    deferred), the same dot would deliver them an empty message, so the connection is dropped
    instead: a server takes no message whose end of data never came."""
    if anyone_accepted:
        connection.close()
        return
    try:
        await pipeline.exchange(b".\r\n", 1)  # its reply, a refusal or not, changes nothing
    except (aiosmtplib.SMTPException, OSError):
        connection.close()


def _refused_message(reply: SMTPResponse) -> RelayResult:
    """MAIL FROM or DATA not accepted: a 5xx is a result with nobody accepted, anything else a
    temporary failure."""
    if reply.code >= 500:
        return RelayResult(accepted=[], response=f"{reply.code} {reply.message}")
    raise RelayTemporaryFailure(f"{reply.code} {reply.message}")


_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
_DOT_AT_LINE_START = re.compile(rb"^\.", re.MULTILINE)


def _data_content(message: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 §4.5.2), as aiosmtplib's `data()` sends it: CRLF line
    endings, a dot at the start of a line doubled, then the end-of-data dot."""
    text = _LINE_ENDING.sub(b"\r\n", message)
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return _DOT_AT_LINE_START.sub(b"..", text) + b".\r\n"


async def _reset(connection: aiosmtplib.SMTP) -> None:
    if not connection.is_connected:
        return
    try:
        await connection.rset()
    except (aiosmtplib.SMTPException, OSError):
        connection.close()
