"""Reading delivery reports (DESIGN.md §9): DSNs (RFC 3464), feedback reports (ARF, RFC 5965), and
bounces that are neither, as far as GNU Mailman's detectors (flufl.bounce) can tell; and the two kinds
of address reports come to (the VERP return path and the feedback address).

Pure functions over bytes and strings: no database, no network. A report that is not what it claims to
be comes back as a value (`kind="unknown"`, with the problem), never as an exception. Every string in a
`Report` is cleaned (no control characters, no undecodable bytes, bounded length): it can be stored as
it is, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import parseaddr
from typing import Literal

from flufl.bounce import all_failures

ReportKind = Literal["dsn", "arf", "unknown"]

VERP_LOCAL_PREFIX = "bounces+"
FEEDBACK_LOCAL_PART = "feedback"  # feedback@<bounce domain>: where providers' feedback loops send ARF

# msg_ + 26 Crockford base32 characters (orgmail.ids); MTAs may change the case of the local part.
_VERP_LOCAL_PART = re.compile(r"bounces\+msg_([0-9a-hjkmnp-tv-z]{26})", re.IGNORECASE)
_ROW_ID_IN_MESSAGE_ID = re.compile(r"<(msg_[0-9a-hjkmnp-tv-z]{26})@[^<>\s]+>", re.IGNORECASE)
_STATUS = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")  # RFC 3463 class.subject.detail
_TOKEN = re.compile(r"\s*([a-z][a-z0-9-]*)", re.IGNORECASE)  # an Action or a Feedback-Type
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+>")  # printable ASCII, no angle brackets inside
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDRESS_LIMIT = 320  # the columns that keep addresses (message_events.recipient, suppressions.email)
_TEXT_LIMIT = 1000
_MESSAGE_ID_LIMIT = 255  # inbound_reports.dedupe_key
_ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
# Mailman's detectors take seconds over megabytes (14 s for 10 MB of junk, 0.08 s for 64 KB); a bounce
# in prose says what failed in its first lines, so they read only the start of a large message.
HEURISTIC_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """One per-recipient block of a DSN (RFC 3464 §2.3), or one address flufl.bounce found."""

    final_recipient: str | None  # the address, without its address type ("rfc822;")
    original_recipient: str | None  # as the sender gave it in ORCPT, when the MTA kept it
    action: str  # lower-cased: failed, delayed, delivered, relayed, expanded
    status: str | None  # "5.1.1"; None when missing or not an RFC 3463 code
    diagnostic: str | None  # Diagnostic-Code, e.g. "smtp; 550 5.1.1 <bob@example.net>: User unknown"


@dataclass(frozen=True, slots=True)
class Report:
    kind: ReportKind
    message_id: str | None = None  # the report's own Message-ID, "<…>" (what identifies it)
    # DSN
    envelope_id: str | None = None  # Original-Envelope-Id: the ENVID the message was sent with
    deliveries: tuple[DeliveryStatus, ...] = ()
    heuristic: bool = False  # deliveries guessed by flufl.bounce from a bounce that is not RFC 3464
    # ARF
    feedback_type: str | None = None  # lower-cased: abuse, fraud, not-spam, virus, auth-failure, other
    complained_recipients: tuple[str, ...] = ()  # Original-Rcpt-To, each time it appears
    original_mail_from: str | None = None  # Original-Mail-From
    # The original message (or its headers) the report returns, DSN and ARF alike
    original_message_id: str | None = None
    original_return_path: str | None = None
    problem: str | None = None  # why the report is unknown, or why it says nothing usable


def parse_report(raw: bytes) -> Report:
    """What the report says. Never raises: anything unreadable is `kind="unknown"`."""
    try:
        message = email.message_from_bytes(raw)
        message_id = _message_id(message.get("Message-ID"))
    except Exception as exc:  # the email package is lenient, but a report is whatever anyone sent
        return Report(kind="unknown", problem=f"not a mail message ({exc.__class__.__name__})")
    try:
        return _read(message, message_id, raw)
    except Exception as exc:
        return Report(kind="unknown", message_id=message_id, problem=f"unreadable ({exc.__class__.__name__})")


def verp_address(message_id: str, *, bounce_domain: str) -> str:
    """The return path of a message: `bounces+<msg id>@<bounce domain>`."""
    return f"{VERP_LOCAL_PREFIX}{message_id}@{bounce_domain}"


def verp_message_id(address: str, *, bounce_domain: str) -> str | None:
    """The `msg_…` id in a VERP address on the bounce domain (in orgmail's own case), else None."""
    local, domain = _split(address)
    if domain != bounce_domain.lower():
        return None
    match = _VERP_LOCAL_PART.fullmatch(local)
    return f"msg_{match[1].upper()}" if match else None


def is_feedback_address(address: str, *, bounce_domain: str) -> bool:
    local, domain = _split(address)
    return domain == bounce_domain.lower() and local.lower() == FEEDBACK_LOCAL_PART


def is_postmaster(address: str, *, bounce_domain: str) -> bool:
    """`postmaster@<bounce domain>`, or `<Postmaster>` alone: RFC 5321 §4.5.1 says a host that takes
    mail must take mail for its postmaster (what arrives there is kept, like any report)."""
    local, domain = _split(address)
    return local.lower() == "postmaster" and domain in ("", bounce_domain.lower())


def message_row_id(message_id_header: str) -> str | None:
    """The `msg_…` id in a Message-ID orgmail made (`<msg_…@sender domain>`), else None."""
    match = _ROW_ID_IN_MESSAGE_ID.fullmatch(message_id_header.strip())
    return f"msg_{match[1][4:].upper()}" if match else None


def xtext_decoded(value: str) -> str:
    """RFC 3461 §4 xtext: `a+2Bb@x` is `a+b@x` (some MTAs copy ORCPT into Original-Recipient as sent)."""
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), value)


# --- reading -------------------------------------------------------------------------------------


def _read(message: Message, message_id: str | None, raw: bytes) -> Report:
    parts = _report_parts(message)
    status = _first(parts, "message/delivery-status")
    if status is not None:
        return _dsn(status, parts, message_id)
    feedback = _first(parts, "message/feedback-report")
    if feedback is not None:
        return _arf(feedback, parts, message_id)
    if len(raw) > HEURISTIC_BYTES:
        message = email.message_from_bytes(raw[:HEURISTIC_BYTES])
    return _heuristic(message, message_id)


def _report_parts(message: Message) -> list[Message]:
    """The parts of the first multipart/report in the message (the message itself, usually): only its
    own parts, since an attached original may hold reports of its own."""
    for part in message.walk():
        if part.get_content_type() == "multipart/report":
            payload = part.get_payload()
            return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    return []


def _first(parts: Iterable[Message], content_type: str) -> Message | None:
    return next((part for part in parts if part.get_content_type() == content_type), None)


def _dsn(status_part: Message, parts: list[Message], message_id: str | None) -> Report:
    blocks = _field_blocks(status_part)
    per_message = [block for block in blocks if not _is_recipient_block(block)]
    deliveries = tuple(
        delivery for delivery in (_delivery(block) for block in blocks if _is_recipient_block(block)) if delivery
    )
    original_message_id, original_return_path = _original(parts)
    return Report(
        kind="dsn",
        message_id=message_id,
        envelope_id=_clean(per_message[0].get("Original-Envelope-Id"), _TEXT_LIMIT) if per_message else None,
        deliveries=deliveries,
        original_message_id=original_message_id,
        original_return_path=original_return_path,
        problem=None if deliveries else "a delivery-status part without per-recipient fields",
    )


def _is_recipient_block(block: Message) -> bool:
    return any(name in block for name in ("Final-Recipient", "Original-Recipient", "Action"))


def _delivery(block: Message) -> DeliveryStatus | None:
    final = _typed_address(block.get("Final-Recipient"))
    original = _typed_address(block.get("Original-Recipient"))
    action = _TOKEN.match(str(block.get("Action", "")))
    if (final is None and original is None) or action is None:
        return None
    status = _STATUS.match(str(block.get("Status", "")))
    return DeliveryStatus(
        final_recipient=final,
        original_recipient=original,
        action=action[1].lower(),  # "failed (bad destination mailbox address)" is seen too
        status=".".join(status.groups()) if status else None,
        diagnostic=_clean(block.get("Diagnostic-Code"), _TEXT_LIMIT),
    )


def _arf(feedback_part: Message, parts: list[Message], message_id: str | None) -> Report:
    blocks = _field_blocks(feedback_part)
    fields = blocks[0] if blocks else Message()
    feedback_type = _TOKEN.match(str(fields.get("Feedback-Type", "")))
    if feedback_type is None:
        return Report(kind="unknown", message_id=message_id, problem="a feedback report without Feedback-Type")
    original_message_id, original_return_path = _original(parts)
    return Report(
        kind="arf",
        message_id=message_id,
        feedback_type=feedback_type[1].lower()[:64],
        complained_recipients=tuple(
            dict.fromkeys(filter(None, (_address(value) for value in fields.get_all("Original-Rcpt-To", []))))
        ),
        original_mail_from=_address(fields.get("Original-Mail-From")),
        original_message_id=original_message_id,
        original_return_path=original_return_path,
    )


def _original(parts: list[Message]) -> tuple[str | None, str | None]:
    """The Message-ID and Return-Path of the original the report returns (whole or its headers)."""
    part = next((p for p in parts if p.get_content_type() in _ORIGINAL_TYPES), None)
    if part is None:
        return None, None
    payload = part.get_payload()
    if isinstance(payload, list):  # message/*: the email package parsed the original already
        headers = payload[0] if payload and isinstance(payload[0], Message) else Message()
    else:
        data = part.get_payload(decode=True)
        headers = BytesHeaderParser().parsebytes(data if isinstance(data, bytes) else b"")
    return _message_id(headers.get("Message-ID")), _address(headers.get("Return-Path"))


def _heuristic(message: Message, message_id: str | None) -> Report:
    """A bounce that is no RFC 3464 DSN: the addresses Mailman's detectors find, permanent or not."""
    if not parseaddr(str(message.get("From", "")))[1]:  # every bounce has one; a detector fails without
        return Report(kind="unknown", message_id=message_id, problem="no From: neither a report nor a bounce")
    temporary, permanent = all_failures(message)
    deliveries = [
        DeliveryStatus(
            final_recipient=address,
            original_recipient=None,
            action="failed" if permanent_failure else "delayed",
            status=None,
            diagnostic=f"flufl.bounce: {'permanent' if permanent_failure else 'temporary'} failure",
        )
        for addresses, permanent_failure in ((permanent, True), (temporary - permanent, False))
        for address in sorted(filter(None, (_clean(a.decode("ascii", "replace"), _ADDRESS_LIMIT) for a in addresses)))
    ]
    if not deliveries:
        return Report(
            kind="unknown",
            message_id=message_id,
            problem="neither a DSN nor a feedback report, and no bounce flufl.bounce recognizes",
        )
    return Report(kind="dsn", message_id=message_id, deliveries=tuple(deliveries), heuristic=True)


def _field_blocks(part: Message) -> list[Message]:
    """The header-like blocks of a message/delivery-status or message/feedback-report part: parsed
    by the email package from a received message, a string when the part was built in code."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n[ \t]*\r?\n", text) if block.strip()]


# --- values ----------------------------------------------------------------------------------------


def _clean(value: object, limit: int) -> str | None:
    """A header value fit to store: unfolded, no control characters or undecodable bytes, at most
    `limit` characters. (compat32 returns a Header object for a value with 8-bit bytes.)"""
    if value is None:
        return None
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return " ".join(_CONTROL.sub(" ", text).split())[:limit] or None


def _typed_address(value: object) -> str | None:
    """`rfc822; bob@example.net` (RFC 3464 §2.3.2, address-type; address) -> `bob@example.net`."""
    text = _clean(value, _ADDRESS_LIMIT + 40)
    if text is None:
        return None
    _type, _, address = text.rpartition(";")
    return _address(address)


def _address(value: object) -> str | None:
    text = _clean(value, _ADDRESS_LIMIT + 40)
    if text is None:
        return None
    address = parseaddr(text)[1] or text.strip("<> ")
    return address[:_ADDRESS_LIMIT] if "@" in address else None


def _message_id(value: object) -> str | None:
    text = _clean(value, 4 * _MESSAGE_ID_LIMIT)
    if text is None:
        return None
    match = _MESSAGE_ID.search(text)
    found = match[0] if match else (f"<{text}>" if _MESSAGE_ID.fullmatch(f"<{text}>") else None)
    return found if found and len(found) <= _MESSAGE_ID_LIMIT else None


def _split(address: str) -> tuple[str, str]:
    """(local part, lower-cased domain without a trailing dot) of an address, angle brackets or not."""
    bare = parseaddr(address)[1] or address.strip().strip("<>")
    local, at, domain = bare.rpartition("@")
    return (local, domain.lower().rstrip(".")) if at else (bare, "")
