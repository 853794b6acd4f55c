"""A real SMTP relay for the tests: aiosmtpd on loopback, in the tests' own event loop.

It records every message it accepts (envelope and bytes) and can be told to misbehave the way real
relays do: refuse the sender or recipients (5xx) or defer them (4xx), answer DATA with an error, drop
the connection or stall mid-session, before or after reading the whole message, answer slowly, or be
down altogether. STARTTLS and AUTH use a certificate made here.

Like real relays it offers PIPELINING (RFC 2920) in its EHLO reply, which aiosmtpd by itself does not
(it reads commands line by line from a stream, so pipelined commands work); `pipelining = False`
makes it a server that does not offer it. `dsn = True` makes it offer DSN (RFC 3461), which aiosmtpd
does not know either: it refuses any MAIL or RCPT parameter but SIZE, BODY and SMTPUTF8 (555), and
upper-cases the rest, so the DSN parameters are checked and taken off the command here, before aiosmtpd
reads it. Either way each message records its MAIL and RCPT parameters exactly as they were sent.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, syntax
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orgmail.config import load_settings
from orgmail.mail.relay import Relay, SmtpRelay, relay_from_url


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's parameters as sent: ["SIZE=…", …]
    rcpt_options: dict[str, list[str]] = field(default_factory=dict)  # accepted address -> its RCPT parameters


@dataclass
class Behaviour:
    """What the relay does; tests change it and `reset()` puts it back."""

    pipelining: bool = True  # offer PIPELINING in the EHLO reply (to connections opened afterwards)
    dsn: bool = False  # offer DSN (RFC 3461) in the EHLO reply (likewise) and take its parameters
    mail_reply: str | None = None  # e.g. "550 5.7.1 sender refused", "451 4.3.0 try later"
    refuse: dict[str, str] = field(default_factory=dict)  # RCPT address -> "550 5.1.1 …" or "451 …"
    data_without_recipients: bool = False  # answer DATA with 354 even when every RCPT was refused
    data_reply: str | None = None  # e.g. "451 4.3.0 try later", "554 5.6.0 content refused"
    # Before the end of the message, which is then not taken:
    drop_at: str | None = None  # "mail", "rcpt" or "data" (at the DATA command): close instead of replying
    stall_at: str | None = None  # "data": never answer DATA; "message": answer 354, then read nothing more
    reply_delay: float = 0.0  # every reply, the greeting included, comes this many seconds late
    # After the whole message was read (and recorded in `received`: RFC 1047, it may have been queued):
    drop_after_data: bool = False  # close without replying
    stall_after_data: bool = False  # never reply
    delay_data: float = 0.0  # reply this many seconds late


class RecordingHandler:
    def __init__(self, relay: SmtpTestRelay):
        self.relay = relay

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # this hook must set it (aiosmtpd's handler documentation)
        if self.relay.behaviour.pipelining:
            responses.insert(-1, "250-PIPELINING")  # before the last line, "250 HELP"
        server.dsn_offered = self.relay.behaviour.dsn
        if server.dsn_offered:
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.relay.commands.append("MAIL")
        if self.relay.behaviour.drop_at == "mail":
            server.transport.abort()
            return "421 gone"
        if self.relay.behaviour.mail_reply:
            return self.relay.behaviour.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        behaviour = self.relay.behaviour
        if behaviour.drop_at == "rcpt":
            server.transport.abort()
            return "421 gone"
        if address in behaviour.refuse:
            if behaviour.data_without_recipients:
                envelope.rcpt_tos.append(_REFUSED)  # aiosmtpd answers DATA with 503 while this is empty
            return behaviour.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope: Envelope):
        behaviour = self.relay.behaviour
        if behaviour.delay_data:
            await asyncio.sleep(behaviour.delay_data)
        if behaviour.data_reply:
            return behaviour.data_reply
        recipients = [address for address in envelope.rcpt_tos if address is not _REFUSED]
        if not recipients:
            self.relay.data_without_recipients.append(envelope.original_content)
            return "554 5.5.1 Error: no valid recipients"
        self.relay.received.append(
            Received(
                envelope.mail_from,
                recipients,
                envelope.original_content,
                mail_options=server.mail_parameters,
                rcpt_options={address: server.rcpt_parameters.get(address, []) for address in recipients},
            )
        )
        if behaviour.drop_after_data:
            server.transport.abort()
            return "421 gone"
        if behaviour.stall_after_data:
            await self.relay.stall(server)
        return f"250 2.0.0 Ok: queued as Q{len(self.relay.received)}"


class RecordingSMTP(SMTP):
    """aiosmtpd's server, plus what its handler hooks cannot do: notice how commands arrive, record
    and take DSN parameters, answer slowly, and drop or stall at the DATA command or in the message."""

    def __init__(self, relay: SmtpTestRelay, **kwargs):
        super().__init__(RecordingHandler(relay), **kwargs)
        self.relay = relay
        self.dsn_offered = False  # by this session's EHLO
        self.mail_parameters: list[str] = []  # of this transaction's MAIL FROM, as sent
        self.rcpt_parameters: dict[str, list[str]] = {}  # of its RCPT TOs, by address

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        _, command, self.mail_parameters = self._parameters("FROM:", arg)
        self.rcpt_parameters = {}
        await self._with_dsn("MAIL", arg, command, self.mail_parameters, super().smtp_MAIL)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        address, command, parameters = self._parameters("TO:", arg)
        if address:
            self.rcpt_parameters[address] = parameters
        await self._with_dsn("RCPT", arg, command, parameters, super().smtp_RCPT)

    def _parameters(self, keyword: str, arg: str | None) -> tuple[str | None, str, list[str]]:
        """The address, the argument without its parameters ("FROM:<address>") and its parameters as
        sent; (None, arg, []) if aiosmtpd would find no address in it."""
        rest = self._strip_command_keyword(keyword, arg or "")
        address, parameters = self._getaddr(rest) if rest else (None, None)
        if not address or parameters is None:
            return None, arg or "", []
        return address, keyword + rest[: len(rest) - len(parameters)].rstrip(), parameters.split()

    async def _with_dsn(
        self,
        verb: str,
        arg: str | None,
        command: str,
        parameters: list[str],
        aiosmtpd_command: Callable[[str | None], Awaitable[None]],
    ) -> None:
        """Offered, DSN's parameters are checked (501 if malformed, as Postfix does) and taken off
        before aiosmtpd reads the command; not offered, aiosmtpd refuses them as it refuses any
        parameter it does not know."""
        if not self.dsn_offered:
            await aiosmtpd_command(arg)
            return
        dsn = [parameter for parameter in parameters if _keyword(parameter) in _DSN_PARAMETERS[verb]]
        if error := _dsn_parameter_error(dsn):
            await self.push(f"501 5.5.4 {error}")
            return
        others = [parameter for parameter in parameters if parameter not in dsn]
        await aiosmtpd_command(" ".join([command, *others]))

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"MAIL FROM:"):
            self.relay.mail_arrivals.append(data)
        super().data_received(data)

    async def push(self, status):
        last_line = (status if isinstance(status, bytes) else status.encode())[3:4] != b"-"
        if last_line and self.relay.behaviour.reply_delay:
            await asyncio.sleep(self.relay.behaviour.reply_delay)
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        behaviour = self.relay.behaviour
        if behaviour.drop_at == "data":
            self.transport.abort()
        elif behaviour.stall_at == "data":
            await self.relay.stall(self)
        elif behaviour.stall_at == "message":
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self.transport.pause_reading()  # the client's writes pile up in its own buffer
            await self.relay.stall(self)
        else:
            await super().smtp_DATA(arg)


_REFUSED = "<refused>"  # stands for a refused recipient in the envelope (`data_without_recipients`)

_DSN_PARAMETERS = {"MAIL": ("RET", "ENVID"), "RCPT": ("NOTIFY", "ORCPT")}
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+")  # RFC 3461 §4, written out apart from orgmail's


def _keyword(parameter: str) -> str:
    return parameter.partition("=")[0].upper()


def _dsn_parameter_error(parameters: list[str]) -> str | None:
    """What is wrong with these DSN parameters by RFC 3461 §4.1-4.4, if anything."""
    keywords = [_keyword(parameter) for parameter in parameters]
    if len(set(keywords)) < len(keywords):
        return f"DSN parameter given twice: {parameters}"
    for parameter, keyword in zip(parameters, keywords, strict=True):
        value = parameter.partition("=")[2]
        if keyword == "RET":
            valid = value.upper() in ("FULL", "HDRS")
        elif keyword == "NOTIFY":
            notify = value.upper().split(",")
            valid = notify == ["NEVER"] or (
                len(set(notify)) == len(notify) and set(notify) <= {"SUCCESS", "FAILURE", "DELAY"}
            )
        elif keyword == "ORCPT":
            address_type, semicolon, address = value.partition(";")
            valid = bool(address_type.isalnum() and semicolon and _XTEXT.fullmatch(address))
        else:  # ENVID
            valid = bool(_XTEXT.fullmatch(value))
        if not valid:
            return f"bad {keyword} parameter: {parameter}"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orgmail test relay")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay-cert.pem", directory / "relay-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class SmtpTestRelay:
    def __init__(
        self,
        *,
        tls: tuple[Path, Path] | None = None,
        credentials: tuple[str, str] | None = None,
        implicit_tls: bool = False,
    ):
        self.port = _free_port()
        self.received: list[Received] = []
        self.data_without_recipients: list[bytes] = []  # what came after a 354 given to nobody
        self.commands: list[str] = []  # MAIL commands seen, one per transaction begun
        self.mail_arrivals: list[bytes] = []  # each piece of input that began with MAIL FROM, as it arrived
        self.behaviour = Behaviour()
        self.sessions = 0  # connections opened: pooling means few
        self.logins: list[str] = []
        self._tls_context = None
        if tls is not None:
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(*tls)
        self._implicit_tls = implicit_tls
        self._credentials = credentials
        self._server: asyncio.AbstractServer | None = None
        self._protocols: list[SMTP] = []
        self._release = asyncio.Event()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self._credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self._credentials
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def _protocol(self) -> SMTP:
        self.sessions += 1
        kwargs = {}
        if self._tls_context is not None and not self._implicit_tls:
            kwargs.update(tls_context=self._tls_context, require_starttls=True)
        if self._credentials is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self._tls_context is not None
            )
        protocol = RecordingSMTP(self, hostname="relay.test", **kwargs)
        self._protocols.append(protocol)
        return protocol

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        ssl_context = self._tls_context if self._implicit_tls else None
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, "127.0.0.1", self.port, ssl=ssl_context, reuse_address=True
        )

    async def stop(self) -> None:
        """Down: no listener, and every open connection is cut."""
        self._release_stalled()
        if self._server is not None:
            self._server.close()
            for protocol in self._protocols:
                if protocol.transport is not None:
                    protocol.transport.abort()
            self._protocols.clear()
            await self._server.wait_closed()
            self._server = None

    def drop_connections(self) -> None:
        """Close every open connection at once, as a relay does with idle ones, and stay up."""
        for protocol in self._protocols:
            if protocol.transport is not None:
                protocol.transport.abort()
        self._protocols.clear()

    async def stall(self, protocol: SMTP) -> None:
        """Answer nothing more on this connection; close it at `reset()` or `stop()` unless the client
        did first. Either way aiosmtpd then cancels the session, and with it this wait."""
        await self._release.wait()
        if protocol.transport is not None:
            protocol.transport.abort()
        await asyncio.Event().wait()

    def _release_stalled(self) -> None:
        self._release.set()
        self._release = asyncio.Event()

    def reset(self) -> None:
        self._release_stalled()
        self.received.clear()
        self.data_without_recipients.clear()
        self.commands.clear()
        self.mail_arrivals.clear()
        self.behaviour = Behaviour()


@pytest.fixture(scope="session")
async def smtp_relay_server():
    relay = SmtpTestRelay()
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
async def smtp_relay(smtp_relay_server):
    """The session's relay, up, with a clean record and default behaviour."""
    if smtp_relay_server._server is None:
        await smtp_relay_server.start()
    smtp_relay_server.reset()
    yield smtp_relay_server
    if smtp_relay_server._server is None:
        await smtp_relay_server.start()
    smtp_relay_server.reset()


# --- the other side, for the relay tests -------------------------------------------------------------
MESSAGE = (
    b"From: ann@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n"
    b"Message-ID: <msg_01TEST@example.com>\r\n\r\nHello.\r\n"
)


def relay_to(tmp_path: Path, url: str, environ: dict[str, str] | None = None, **overrides) -> Relay:
    """The relay the service makes of `ORGMAIL_RELAY_URL=url`, other ORGMAIL_* variables in `environ`
    and Settings fields in `overrides`."""
    settings = load_settings(
        environ or {},
        data_dir=tmp_path,
        database_url="sqlite+aiosqlite:///:memory:",
        secret_key=b"k",
        relay_url=url,
        **overrides,
    )
    return relay_from_url(settings)


def pipelined(relay: Relay) -> bool:
    """Whether the relay's one idle connection pipelines."""
    assert isinstance(relay, SmtpRelay)
    [connection] = relay._idle
    return connection.pipeline is not None
