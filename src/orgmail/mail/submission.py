"""The submission listener (DESIGN.md §10, RFC 6409): applications and members' mail clients send over
SMTP, with STARTTLS (`ORGMAIL_SUBMISSION_LISTEN`, when a certificate is set) or implicit TLS
(`ORGMAIL_SUBMISSION_TLS_LISTEN`), AUTH PLAIN or LOGIN only over TLS or from loopback.

aiosmtpd's `SMTP` served in the service's own event loop with SO_REUSEPORT, as the inbound listener
is. What a credential, a recipient or a message means is the `Intake`'s business
(`core.sending.submission`); this module owns the wire: replies, the AUTH throttle, the size and
recipient limits. Every domain failure becomes a reply through one table, `FAILURE_REPLIES`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from orgmail.config import Settings
from orgmail.errors import (
    AllRecipientsSuppressed,
    DomainNotFound,
    DomainNotVerified,
    IdempotencyConflict,
    InvalidRequest,
    MessageTooLarge,
    OrgmailError,
    RecipientSuppressed,
    RelayOutcomeUnknown,
    RelayRejected,
    RelayUnavailable,
    SenderNotAllowed,
    Unauthorized,
    Unavailable,
)
from orgmail.mail.smtp_server import SHUTTING_DOWN, Listener, TrackedSMTP, serve, server_tls_context

logger = logging.getLogger("orgmail.submission")

AUTH_FAILURES_ALLOWED = 4  # the fifth failure within the window is answered 421 and closes
AUTH_WINDOW_SECONDS = 300.0
AUTH_BLOCK_SECONDS = 300.0


class Sent(Protocol):
    @property
    def id(self) -> str: ...


class Limits(Protocol):
    @property
    def max_recipients(self) -> int: ...

    @property
    def max_message_bytes(self) -> int: ...


class Intake(Protocol):
    """What the listener asks of the domain (core.sending.submission.SubmissionIntake)."""

    @property
    def limits(self) -> Limits: ...

    async def authenticate(self, *, user: str, password: str) -> Any:
        """Who submits (opaque here, handed back below); `orgmail.errors.Unauthorized` for wrong
        credentials."""
        ...

    async def check_recipient(self, submitter: Any, address: str) -> None:
        """`RecipientSuppressed` when the org suppresses `address`."""
        ...

    async def submit(self, submitter: Any, *, recipients: Sequence[str], raw: bytes) -> Sent:
        """Send the message (or replay one with its Message-ID); its row once the relay answered."""
        ...


# Every answer about a submission, in one place: the outcomes, then the failures (first match wins;
# `{id}` is the send-log row, `{reason}` the suppression's). aiosmtpd's own answers stay its own: 530
# before AUTH, 552 for a declared or read size over the limit, 5xx for bad syntax.
REPLIES: dict[str, str] = {
    "recipient accepted": "250 2.1.5 OK",
    "too many recipients": "452 4.5.3 Too many recipients",
    "sent": "250 2.0.0 Sent as {id}",
    "auth accepted": "235 2.7.0 Authentication successful",
    "auth refused": "535 5.7.8 Authentication credentials invalid",
    "auth needs tls": "538 5.7.11 Encryption required for requested authentication mechanism",
    "auth throttled": "421 4.7.0 Too many failed logins, try again later",
    "shutting down": SHUTTING_DOWN,
}
FAILURE_REPLIES: dict[type[Exception], str] = {
    RecipientSuppressed: "550 5.7.1 Recipient suppressed ({reason})",
    SenderNotAllowed: "550 5.7.1 From and Sender must be your own address",
    DomainNotFound: "550 5.7.1 The From domain is not one of your organization's",
    DomainNotVerified: "550 5.7.1 The From domain is not verified yet",
    InvalidRequest: "550 5.6.0 {message}",
    MessageTooLarge: "552 5.3.4 Message too big for system",
    AllRecipientsSuppressed: "550 5.7.1 Every recipient is suppressed ({id})",
    RelayUnavailable: "451 4.4.1 Relay unavailable, try again later ({id})",
    RelayRejected: "554 5.0.0 The relay refused every recipient ({id})",
    # The relay read the whole message and never answered: it may have it. Not relayed again, so
    # not retried by the client either (a retry would find this row and say the same).
    RelayOutcomeUnknown: "554 5.4.7 The relay's answer was lost; it may or may not have the message ({id})",
    IdempotencyConflict: "451 4.3.0 The same Message-ID is being sent right now ({id})",
    Unauthorized: "535 5.7.8 Authentication credentials invalid",
    Unavailable: "451 4.3.0 Temporary failure, try again later",
    Exception: "451 4.3.0 Temporary failure, try again later",  # not sent, so not refused for good either
}


def reply_for_failure(exc: Exception) -> str:
    """The SMTP reply for a failure, naming the row and reason when it has them."""
    if isinstance(exc, Unavailable | RelayUnavailable):
        logger.warning("submission not taken: %s", exc.__class__.__name__)
    elif not isinstance(exc, OrgmailError):
        logger.error("submission not taken: unexpected failure", exc_info=exc)
    template = next(reply for failure, reply in FAILURE_REPLIES.items() if isinstance(exc, failure))
    details = exc.details or {} if isinstance(exc, OrgmailError) else {}
    message = exc.message if isinstance(exc, OrgmailError) else ""
    return template.format(
        id=details.get("messageId", "-"), reason=details.get("reason", "-"), message=" ".join(message.split())
    )


@dataclass
class AuthThrottle:
    """Failed AUTH per client address: the fifth within the window blocks that address for a while,
    whatever it sends (loopback included); other addresses are not affected. Per process."""

    failures_allowed: int = AUTH_FAILURES_ALLOWED
    window_seconds: float = AUTH_WINDOW_SECONDS
    block_seconds: float = AUTH_BLOCK_SECONDS
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _blocked_until: dict[str, float] = field(default_factory=dict)

    def blocked(self, client: str) -> bool:
        until = self._blocked_until.get(client)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._blocked_until[client]
        return False

    def failed(self, client: str) -> bool:
        """Count a failure; True when it blocks the address."""
        now = time.monotonic()
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window_seconds:
            recent.popleft()
        recent.append(now)
        if len(recent) > self.failures_allowed:
            del self._failures[client]
            self._blocked_until[client] = now + self.block_seconds
            return True
        if len(self._failures) > 100_000:  # a scan from many addresses must not grow this forever
            self._failures = {client: recent}
        return False


def _is_loopback(peer: Any) -> bool:
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False


class _SubmissionHandler:
    """aiosmtpd's handler hooks: EHLO (AUTH offered where it may be used), RCPT, DATA."""

    def __init__(self, intake: Intake):
        self._intake = intake
        self.sending: set[asyncio.Task[str]] = set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses):
        session.host_name = hostname  # this hook must set it (aiosmtpd's documentation)
        assert isinstance(server, _SubmissionSMTP)
        if server.may_authenticate:
            return responses
        return [line for line in responses if not line.startswith("250-AUTH")]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options):
        # Whatever the client says here, orgmail sets the envelope sender itself (§9).
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        if len(envelope.rcpt_tos) >= self._intake.limits.max_recipients:
            return REPLIES["too many recipients"]
        try:
            await self._intake.check_recipient(session.auth_data, address)
        except Exception as exc:
            return reply_for_failure(exc)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLIES["recipient accepted"]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Shielded: a client that hangs up after its final "." does not cut the relay off mid-send
        # (its retry with the same Message-ID then finds the row).
        task = asyncio.ensure_future(
            self._submit(session.auth_data, list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)
        return await asyncio.shield(task)

    async def _submit(self, submitter: Any, recipients: list[str], raw: bytes) -> str:
        try:
            sent = await self._intake.submit(submitter, recipients=recipients, raw=raw)
        except Exception as exc:
            return reply_for_failure(exc)
        return REPLIES["sent"].format(id=sent.id)


class _SubmissionSMTP(TrackedSMTP):
    """aiosmtpd's server with AUTH decided here: allowed over TLS (STARTTLS or implicit) or from
    loopback, throttled per client address, and checked by the intake, which is async (aiosmtpd's
    `authenticator` is called synchronously: it only hands over the decoded credentials)."""

    def __init__(
        self,
        handler: _SubmissionHandler,
        *,
        intake: Intake,
        throttle: AuthThrottle,
        implicit_tls: bool,
        sessions: set[TrackedSMTP],
        **kwargs: Any,
    ):
        super().__init__(handler, sessions=sessions, authenticator=self._hand_over, auth_required=True, **kwargs)
        # aiosmtpd's own rule (AUTH only after its STARTTLS) knows neither implicit TLS nor loopback:
        # `smtp_AUTH` below applies ours. Set after construction, which would warn about it.
        self._auth_require_tls = False
        self._intake = intake
        self._throttle = throttle
        self._implicit_tls = implicit_tls
        self._credentials: LoginPassword | None = None

    @property
    def client_address(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "?"

    @property
    def may_authenticate(self) -> bool:
        encrypted = self._implicit_tls or self._tls_protocol is not None
        return encrypted or (self.session is not None and _is_loopback(self.session.peer))

    def _hand_over(self, server, session, envelope, mechanism: str, auth_data: Any) -> AuthResult:
        self._credentials = auth_data if isinstance(auth_data, LoginPassword) else None
        return AuthResult(success=False, handled=True)  # `smtp_AUTH` answers, once the intake has

    async def smtp_AUTH(self, arg: str) -> None:
        client = self.client_address
        if self._throttle.blocked(client):
            self.hang_up(REPLIES["auth throttled"])
            return
        if self.session is not None and self.session.extended_smtp and not self.may_authenticate:
            await self.push(REPLIES["auth needs tls"])
            return
        self._credentials = None
        await super().smtp_AUTH(arg)  # decodes PLAIN / LOGIN (with its challenges) into `_hand_over`
        credentials, self._credentials = self._credentials, None
        if credentials is None or self.session is None:
            return  # aiosmtpd answered already (bad syntax, unknown mechanism, client cancelled)
        try:
            user, password = credentials.login.decode(), credentials.password.decode()
            submitter = await self._intake.authenticate(user=user, password=password)
        except Exception as exc:
            if not isinstance(exc, Unauthorized | UnicodeDecodeError):
                await self.push(reply_for_failure(exc))  # the database, say: not the client's fault
                return
            if self._throttle.failed(client):
                logger.warning("AUTH throttled for %s after repeated failures", client)
                self.hang_up(REPLIES["auth throttled"])
                return
            await self.push(REPLIES["auth refused"])
            return
        self.session.authenticated = True
        self.session.auth_data = submitter
        await self.push(REPLIES["auth accepted"])


class SubmissionListener(Listener):
    """The running listeners (STARTTLS and/or implicit TLS): `await listener.stop()` ends them. A
    message being relayed gets its relay's answer into its row either way."""


async def start(settings: Settings, *, intake: Intake, hostname: str | None = None) -> SubmissionListener:
    """Listen on `settings.submission_listen` (STARTTLS when a certificate is set) and/or
    `settings.submission_tls_listen` (implicit TLS, which needs one)."""
    tls_context: ssl.SSLContext | None = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        tls_context = server_tls_context(settings.tls_cert, settings.tls_key)
    if settings.submission_listen is None and settings.submission_tls_listen is None:
        raise ValueError("the submission listener needs ORGMAIL_SUBMISSION_LISTEN or ORGMAIL_SUBMISSION_TLS_LISTEN")
    if settings.submission_tls_listen is not None and tls_context is None:
        raise ValueError("ORGMAIL_SUBMISSION_TLS_LISTEN needs ORGMAIL_TLS_CERT and ORGMAIL_TLS_KEY")
    handler = _SubmissionHandler(intake)
    throttle = AuthThrottle()
    sessions: set[TrackedSMTP] = set()
    loop = asyncio.get_running_loop()
    banner_name = hostname or settings.mail_host or "orgmail"

    def protocol(*, implicit_tls: bool) -> _SubmissionSMTP:
        return _SubmissionSMTP(
            handler,
            intake=intake,
            throttle=throttle,
            implicit_tls=implicit_tls,
            sessions=sessions,
            hostname=banner_name,  # the banner's name; no getfqdn(), which may wait on DNS
            ident="orgmail",
            tls_context=None if implicit_tls else tls_context,
            data_size_limit=intake.limits.max_message_bytes,
            enable_SMTPUTF8=False,  # non-ASCII local parts are not sent (validation's rule)
            loop=loop,
        )

    servers: list[asyncio.Server] = []
    if settings.submission_listen is not None:
        host, port = settings.submission_listen
        servers.append(await serve(lambda: protocol(implicit_tls=False), (host, port)))
        logger.info("submission listener on %s:%d (%s)", host, port, "STARTTLS" if tls_context else "plain")
    if settings.submission_tls_listen is not None:
        host, port = settings.submission_tls_listen
        servers.append(await serve(lambda: protocol(implicit_tls=True), (host, port), implicit_tls=tls_context))
        logger.info("submission listener on %s:%d (implicit TLS)", host, port)
    return SubmissionListener(servers, sessions, handler.sending)
