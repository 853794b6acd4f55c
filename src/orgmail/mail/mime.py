"""Build the outgoing message with the standard library's `email` package.

The shape follows what mail clients expect: text/plain, text/html, or multipart/alternative with
both; inline parts (a `contentId`) go into a multipart/related beside the HTML; other attachments
make the whole a multipart/mixed. Bcc is never a header: it lives only in the envelope.

Every body part is 7-bit (quoted-printable or base64 where needed): a relay that downgrades 8BITMIME
would re-encode the body and break the DKIM signature, so we never give it a reason to.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from orgmail.addresses import Address

# SMTP line endings, and 7-bit bodies whatever the relay advertises (see the module docstring).
SMTP_7BIT = policy.SMTP.clone(cte_type="7bit")

# Headers the pipeline owns: the caller's `headers` may not set them. Addresses, subject and body
# structure come from their own fields; Message-ID, Date and DKIM-Signature are ours to make;
# Received, Return-Path and the Resent-* family belong to relays.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
        "Content-ID", "DKIM-Signature", "Received", "Return-Path", "Resent-From", "Resent-Sender",
        "Resent-To", "Resent-Cc", "Resent-Bcc", "Resent-Date", "Resent-Message-ID",
    )
)

# RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")


@dataclass(frozen=True)
class Part:
    """An attachment, already decoded; `content_id` makes it inline (referenced as `cid:` in HTML)."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    content_id: str | None = None


@dataclass(frozen=True)
class Draft:
    """Everything that goes into the message, validated: the pipeline builds this, `build` renders it."""

    sender: Address
    to: Sequence[Address]
    subject: str
    message_id: str  # with the angle brackets, on the sender's domain
    date: datetime
    cc: Sequence[Address] = ()
    reply_to: Sequence[Address] = ()
    text: str | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: Sequence[Part] = ()


def header_problem(name: str, value: str) -> str | None:
    """Why a caller's custom header cannot be sent, or None if it can."""
    if not _FIELD_NAME.match(name):
        return "not a valid header name"
    if name.lower() in RESERVED_HEADERS:
        return "this header is set by orgmail and cannot be overridden"
    if any(ch in value for ch in "\r\n\0"):
        return "line breaks are not allowed in header values"
    return None


def guess_content_type(filename: str) -> str:
    guessed, _encoding = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def build(draft: Draft, *, boundary_token: str | None = None) -> bytes:
    """Render the draft as CRLF bytes, ready to be signed.

    `boundary_token` fixes the multipart boundaries (golden-file tests); otherwise the standard
    library picks random ones and checks that they do not occur in the content.
    """
    message = EmailMessage(policy=SMTP_7BIT)
    message["From"] = draft.sender.formatted()
    message["To"] = ", ".join(address.formatted() for address in draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(address.formatted() for address in draft.cc)
    if draft.reply_to:
        message["Reply-To"] = ", ".join(address.formatted() for address in draft.reply_to)
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(draft.date)
    message["Message-ID"] = draft.message_id
    for name, value in draft.headers.items():
        message[name] = value

    _set_body(message, draft)
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # the stdlib adds one to parts it converts; only the top needs it
    if boundary_token is not None:
        for index, part in enumerate(p for p in message.walk() if p.is_multipart()):
            # "=_" cannot occur in quoted-printable or base64 output, so it cannot collide with a body.
            part.set_boundary(f"=_{boundary_token}_{index}")
    return message.as_bytes(policy=SMTP_7BIT)


def _set_body(message: EmailMessage, draft: Draft) -> None:
    inline = [part for part in draft.attachments if part.content_id]
    attached = [part for part in draft.attachments if not part.content_id]
    if draft.text is not None:
        message.set_content(draft.text, subtype="plain", charset="utf-8")
        if draft.html is not None:
            message.add_alternative(draft.html, subtype="html", charset="utf-8")
    else:
        message.set_content(draft.html or "", subtype="html", charset="utf-8")

    if draft.html is not None and inline:
        html_part = message if draft.text is None else message.get_payload()[-1]
        for part in inline:
            maintype, subtype = part.content_type.split("/", 1)
            html_part.add_related(
                part.content, maintype=maintype, subtype=subtype, cid=f"<{part.content_id}>",
                disposition="inline", filename=part.filename,
            )
    elif inline:
        attached = list(draft.attachments)  # no HTML to reference them: plain attachments, cid kept

    for part in attached:
        maintype, subtype = part.content_type.split("/", 1)
        extra = {"cid": f"<{part.content_id}>"} if part.content_id else {}
        message.add_attachment(
            part.content, maintype=maintype, subtype=subtype, filename=part.filename, **extra
        )
