"""Delivery reports as the outside world writes them, built with email.mime for the tests: DSNs as
Postfix writes them (RFC 3464), feedback reports as mailbox providers' feedback loops send them (ARF,
RFC 5965), and a bounce that is neither (Exim's, which only flufl.bounce reads)."""

from __future__ import annotations

import email
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32

CRLF = compat32.clone(linesep="\r\n")
MTA = "mx.example.net"


@dataclass
class Rcpt:
    """One per-recipient block of a DSN."""

    address: str
    action: str = "failed"
    status: str = "5.1.1"
    diagnostic: str | None = "smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    original: str | None = "same"  # Original-Recipient ("same": the address; None: left out, as without ORCPT)


HARD = {"action": "failed", "status": "5.1.1"}
GAVE_UP = {"action": "failed", "status": "4.4.7", "diagnostic": None}  # Postfix after maximal_queue_lifetime
POLICY = {"action": "failed", "status": "5.7.1", "diagnostic": "smtp; 550 5.7.1 Message rejected as spam"}
DELAYED = {"action": "delayed", "status": "4.4.1", "diagnostic": None}
DELIVERED = {"action": "delivered", "status": "2.0.0", "diagnostic": "smtp; 250 2.0.0 Ok: queued as 4FD2"}
RELAYED = {"action": "relayed", "status": "2.0.0", "diagnostic": "smtp; 250 2.0.0 Ok: queued as 4FD3"}

_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
}


def report_message_id() -> str:
    return f"<20261201100000.{secrets.token_hex(6).upper()}@{MTA}>"


def original_headers(*, message_id: str, return_path: str, to: str = "bob@example.net") -> str:
    """The headers of a message orgmail sent, as the receiving MTA saw them."""
    return (
        f"Return-Path: <{return_path}>\r\n"
        f"Received: from relay.orgmail.test by {MTA} with ESMTPS id 4FD1\r\n"
        "From: Ann <ann@sender.example.com>\r\n"
        f"To: {to}\r\n"
        "Subject: Hi\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
    )


def _fields(pairs: Sequence[tuple[str, str | None]]) -> Message:
    block = Message()
    for name, value in pairs:
        if value is not None:
            block[name] = value
    return block


def postfix_dsn(
    *,
    to: str,
    recipients: Sequence[Rcpt],
    envelope_id: str | None = None,
    original: str | None = None,
    message_id: str | None = "new",
) -> bytes:
    """A DSN the way Postfix's bounce daemon writes one: a notification, the delivery-status part
    (per-message fields, then one block per recipient), and the returned headers (RET=HDRS)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"MAILER-DAEMON@{MTA} (Mail Delivery System)"
    report["To"] = to
    report["Subject"] = _SUBJECTS.get(recipients[0].action, "Successful Mail Delivery Report")
    report["Auto-Submitted"] = "auto-replied"
    if message_id is not None:
        report["Message-Id"] = report_message_id() if message_id == "new" else message_id
    report.attach(MIMEText(f"This is the mail system at host {MTA}.\n\nI'm sorry to have to inform you ...\n"))
    blocks = [
        _fields(
            [
                ("Reporting-MTA", f"dns; {MTA}"),
                ("X-Postfix-Queue-ID", "4FD1"),
                ("X-Postfix-Sender", f"rfc822; {to}"),
                ("Arrival-Date", "Tue,  1 Dec 2026 10:00:00 +0000 (UTC)"),
                ("Original-Envelope-Id", envelope_id),
            ]
        )
    ]
    for rcpt in recipients:
        original_recipient = rcpt.address if rcpt.original == "same" else rcpt.original
        blocks.append(
            _fields(
                [
                    ("Final-Recipient", f"rfc822; {rcpt.address}"),
                    ("Original-Recipient", f"rfc822;{original_recipient}" if original_recipient else None),
                    ("Action", rcpt.action),
                    ("Status", rcpt.status),
                    ("Remote-MTA", "dns; mx.example.net"),
                    ("Diagnostic-Code", rcpt.diagnostic.format(address=rcpt.address) if rcpt.diagnostic else None),
                ]
            )
        )
    status = MIMEBase("message", "delivery-status")
    status["Content-Description"] = "Delivery report"
    status.set_payload(blocks)
    report.attach(status)
    if original is not None:
        headers = MIMEText(original, "rfc822-headers")
        headers["Content-Description"] = "Undelivered Message Headers"
        report.attach(headers)
    return report.as_bytes(policy=CRLF)


def arf_report(
    *,
    to: str,
    original: str,
    feedback_type: str = "abuse",
    rcpt_to: Sequence[str] = (),
    mail_from: str | None = None,
    headers_only: bool = False,
    message_id: str | None = "new",
) -> bytes:
    """A feedback report as a provider's feedback loop sends one (RFC 5965 §2): a human part, the
    machine-readable message/feedback-report part, and the original (whole, or its headers)."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "Feedback Loop <fbl@provider.example>"
    report["To"] = to
    report["Subject"] = "FW: Hi"
    if message_id is not None:
        report["Message-ID"] = report_message_id() if message_id == "new" else message_id
    report.attach(MIMEText("This is an email abuse report for an email message received from IP 192.0.2.1.\n"))
    fields = [f"Feedback-Type: {feedback_type}", "User-Agent: SomeGenerator/1.0", "Version: 1"]
    if mail_from:
        fields.append(f"Original-Mail-From: <{mail_from}>")
    fields += [f"Original-Rcpt-To: <{address}>" for address in rcpt_to]
    fields += ["Arrival-Date: Tue, 1 Dec 2026 10:00:05 +0000", "Source-IP: 192.0.2.1", "Reported-Domain: example.com"]
    feedback = MIMEBase("message", "feedback-report")
    feedback.set_payload("\r\n".join(fields) + "\r\n")
    report.attach(feedback)
    if headers_only:
        report.attach(MIMEText(original, "rfc822-headers"))
    else:
        report.attach(MIMEMessage(email.message_from_string(original + "\r\nHello.\r\n")))
    return report.as_bytes(policy=CRLF)


def exim_bounce(*, to: str, failed: Sequence[str]) -> bytes:
    """Exim's bounce: plain text, no delivery-status part, the addresses in X-Failed-Recipients."""
    bounce = MIMEText(
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        + "".join(f"  {address}\n    550 5.1.1 User unknown\n" for address in failed)
    )
    bounce["From"] = f"Mail Delivery System <Mailer-Daemon@{MTA}>"
    bounce["To"] = to
    bounce["Subject"] = "Mail delivery failed: returning message to sender"
    bounce["X-Failed-Recipients"] = ", ".join(failed)
    bounce["Message-Id"] = report_message_id()
    return bounce.as_bytes(policy=CRLF)


def delay_warning(*, to: str, address: str) -> bytes:
    """A delay warning in prose (googlemail's), which flufl.bounce reads as a temporary failure."""
    warning = MIMEText(
        "Delivery to the following recipient has been delayed:\n\n"
        f"     {address}\n\n"
        "Message will be retried for 2 more day(s)\n"
    )
    warning["From"] = "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
    warning["To"] = to
    warning["Subject"] = "Delivery Status Notification (Delay)"
    return warning.as_bytes(policy=CRLF)
