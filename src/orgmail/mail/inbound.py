"""The inbound listener (DESIGN.md §9): the SMTP server behind the bounce domain's MX, which takes
delivery reports (DSNs, feedback reports) and hands each to a `ReportSink` that stores it and does
what it says; it answers 250 only once the sink has stored the report.

aiosmtpd's `SMTP` protocol served by `loop.create_server` in the service's own event loop (not
aiosmtpd's `Controller`, which runs its own loop in a thread): the sink then uses the app's database
pools. The socket is bound with SO_REUSEPORT, so each of `orgmail serve --workers N` binds the port
and the kernel spreads connections among them (Linux).

It is no open relay and no spam sink: RCPT is refused (550 5.1.1) for anything but the addresses the
sink accepts. It offers no DSN extension, and ignores DSN parameters a client sends anyway (RFC 3461
RET, ENVID, NOTIFY, ORCPT): MTAs drop a bounce of a bounce silently, so refusing one loses it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Literal, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax
from prometheus_client import CollectorRegistry, Counter

from orgmail.config import Settings
from orgmail.errors import Unavailable
from orgmail.mail.smtp_server import SHUTTING_DOWN, Listener, TrackedSMTP, serve, server_tls_context

logger = logging.getLogger("orgmail.inbound")

MAX_REPORT_BYTES = 10 * 1024 * 1024  # larger is 552 (reports return headers only: RET=HDRS)
MAX_RECIPIENTS = 50  # per transaction; a report has one

ReportResult = Literal["parsed", "unparsed", "duplicate"]
REPORT_RESULTS: tuple[ReportResult, ...] = ("parsed", "unparsed", "duplicate")


class ReportSink(Protocol):
    """Where reports go (core.feedback.InboundReports)."""

    async def accepts(self, recipient: str) -> bool:
        """Whether reports are received at `recipient` (RCPT TO)."""
        ...

    async def record(self, *, envelope_sender: str, envelope_recipients: list[str], raw: bytes) -> ReportResult:
        """Store the report durably and do what it says; `orgmail.errors.Unavailable` when the
        database cannot be reached."""
        ...


# Every answer the listener gives about a report, in one place: the outcomes, then the failures (first
# match wins). aiosmtpd's own answers stay its own: 552 over the size limit, 5xx for bad syntax.
REPLIES: dict[str, str] = {
    "recipient accepted": "250 2.1.5 OK",
    "recipient unknown": "550 5.1.1 No such recipient here",
    "too many recipients": "452 4.5.3 Too many recipients",
    "parsed": "250 2.0.0 Report stored",
    "unparsed": "250 2.0.0 Report stored",
    "duplicate": "250 2.0.0 Report already stored",
    "shutting down": SHUTTING_DOWN,
}
FAILURE_REPLIES: dict[type[Exception], str] = {
    Unavailable: "451 4.3.0 Temporary failure, try again later",  # the database: the sender retries
    Exception: "451 4.3.0 Temporary failure, try again later",  # not stored, so not refused for good either
}


def reply_for_failure(exc: Exception) -> str:
    if isinstance(exc, Unavailable):
        logger.warning("inbound report not taken: %s", exc)
    else:
        logger.error("inbound report not taken: unexpected failure", exc_info=exc)
    return next(reply for failure, reply in FAILURE_REPLIES.items() if isinstance(exc, failure))


def reports_counter(registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "orgmail_inbound_reports", "Reports the inbound listener took, by result", ["result"], registry=registry
    )
    for result in REPORT_RESULTS:
        counter.labels(result)  # present in /metrics from the start, at 0
    return counter


class _ReportHandler:
    """aiosmtpd's handler hooks: RCPT asks the sink, DATA stores through it."""

    def __init__(self, sink: ReportSink, *, counter: Counter):
        self._sink = sink
        self._counter = counter
        self.storing: set[asyncio.Task[str]] = set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses):
        session.host_name = hostname  # this hook must set it (aiosmtpd's documentation)
        # Nobody logs in to an MX: aiosmtpd would offer AUTH after STARTTLS, always failing.
        return [line for line in responses if not line.startswith("250-AUTH")]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return REPLIES["too many recipients"]
        try:
            accepted = await self._sink.accepts(address)
        except Exception as exc:
            return reply_for_failure(exc)
        if not accepted:
            return REPLIES["recipient unknown"]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLIES["recipient accepted"]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Shielded: a client that hangs up after its final "." still has its report stored (it will
        # send it again, not having seen the 250, and that copy is then a duplicate).
        task = asyncio.ensure_future(
            self._store(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        self.storing.add(task)
        task.add_done_callback(self.storing.discard)
        return await asyncio.shield(task)

    async def _store(self, envelope_sender: str, envelope_recipients: list[str], raw: bytes) -> str:
        try:
            result = await self._sink.record(
                envelope_sender=envelope_sender, envelope_recipients=envelope_recipients, raw=raw
            )
        except Exception as exc:
            return reply_for_failure(exc)
        self._counter.labels(result).inc()
        return REPLIES[result]


# RFC 3461's parameters, after the address; AUTH= (RFC 4954) too, which a client may add uninvited.
_IGNORED_MAIL_PARAMETERS = re.compile(r"\s+(?:RET|ENVID|AUTH)=\S*", re.IGNORECASE)
_IGNORED_RCPT_PARAMETERS = re.compile(r"\s+(?:NOTIFY|ORCPT)=\S*", re.IGNORECASE)


def _without(parameters: re.Pattern[str], arg: str | None) -> str | None:
    if arg is None:
        return None
    address_end = arg.rfind(">") + 1  # parameters follow the address, which stays untouched
    return arg[:address_end] + parameters.sub("", arg[address_end:])


class _ReportSMTP(TrackedSMTP):
    """aiosmtpd's server, which answers 555 to parameters it does not know: here DSN parameters are
    dropped before it reads them."""

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        await super().smtp_MAIL(_without(_IGNORED_MAIL_PARAMETERS, arg))

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(_without(_IGNORED_RCPT_PARAMETERS, arg))


class InboundListener(Listener):
    """A running listener: `await listener.stop()` ends it (a report being stored is stored first)."""


async def start(
    settings: Settings,
    *,
    reports: ReportSink,
    registry: CollectorRegistry,
    max_report_bytes: int = MAX_REPORT_BYTES,
) -> InboundListener:
    """Listen on `settings.inbound_listen` for reports to `settings.bounce_domain`, with STARTTLS
    when `settings.tls_cert`/`tls_key` are set; count them on `registry`."""
    if settings.inbound_listen is None or settings.bounce_domain is None:
        raise ValueError("the inbound listener needs ORGMAIL_INBOUND_LISTEN and ORGMAIL_BOUNCE_DOMAIN")
    host, port = settings.inbound_listen
    tls_context = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        tls_context = server_tls_context(settings.tls_cert, settings.tls_key)
    handler = _ReportHandler(reports, counter=reports_counter(registry))
    sessions: set[TrackedSMTP] = set()
    loop = asyncio.get_running_loop()

    def protocol() -> _ReportSMTP:
        return _ReportSMTP(
            handler,
            sessions=sessions,
            hostname=settings.bounce_domain,  # the banner's name; no getfqdn(), which may wait on DNS
            ident="orgmail",
            tls_context=tls_context,
            data_size_limit=max_report_bytes,
            enable_SMTPUTF8=True,
            loop=loop,
        )

    server = await serve(protocol, (host, port))
    logger.info("inbound listener on %s:%d for %s", host, port, settings.bounce_domain)
    return InboundListener([server], sessions, handler.storing)
