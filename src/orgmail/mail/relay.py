"""Relays: where a signed message goes next. `SmtpRelay` (a smarthost over a pool of persistent
aiosmtplib connections) and `OutboxRelay` (the embedded default: `.eml` files in the data folder).

Results are values: a recipient refused with a 5xx is data in `RelayResult.rejected`, and a message
refused as a whole (5xx to MAIL FROM or DATA) is a result with nobody accepted. Only what leaves the
outcome open for a retry is an exception: `RelayTemporaryFailure` (relay down, a 4xx, a dropped
connection, a timeout). It is raised only when the relay has not taken the message: an SMTP server
takes responsibility for a message with its reply to the end of DATA (RFC 5321 §4.1.1.4), and a 4xx
for one recipient aborts the whole transaction (RSET) so a retry can never deliver to anyone twice.
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
    and hands it back. A connection the server closed while idle fails at MAIL FROM, before any
    part of the message went out, so it is replaced and the transaction re-run once.
    """

    def __init__(self, target: SmtpTarget, *, pool_size: int = 4, timeout: float = 30.0):
        self.target = target
        self.timeout = timeout
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[aiosmtplib.SMTP] = []

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

    async def _connect(self) -> aiosmtplib.SMTP:
        target = self.target
        connection = aiosmtplib.SMTP(
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
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise RelayTemporaryFailure(f"the relay refused our credentials: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RelayTemporaryFailure(f"cannot reach the relay: {exc}") from None
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
    """The connection was closed by the server before this transaction sent anything."""


async def _transaction(
    connection: aiosmtplib.SMTP, sender: str, recipients: list[str], message: bytes
) -> RelayResult:
    options = [f"SIZE={len(message)}"] if connection.supports_extension("size") else []
    try:
        await connection.mail(sender, options=options)
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


async def _reset(connection: aiosmtplib.SMTP) -> None:
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
