"""What a send asks for, and everything about it that can be refused without the database.

Pure functions over plain values: `validate` parses the addresses, decodes the attachments and checks
the limits; a refusal is 400 `invalid_request` (413 for an obvious giant), naming the field.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from orgmail.addresses import Address, parse_mailbox
from orgmail.errors import InvalidRequest, MessageTooLarge
from orgmail.mail import mime

MAX_HEADERS = 50
MAX_ATTACHMENTS = 100
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
_CONTENT_ID = re.compile(r"^[!-;=?-~]+$")  # printable, no spaces and no angle brackets


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str  # base64, as it came in
    content_type: str | None = None
    content_id: str | None = None


@dataclass(frozen=True)
class SendRequest:
    """What the caller asked to send (MailSendInput without its org and idempotency key)."""

    sender: str
    to: Sequence[str]
    subject: str
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    reply_to: Sequence[str] = ()
    text: str | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: Sequence[Attachment] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Identifies the request for idempotency: the same key with another fingerprint is a 409.

        JSON lets a client send lone surrogates ("\\ud800"), which no mail or database can store:
        they are refused here, the first place the whole request is encoded.
        """
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=list)
        try:
            encoded = canonical.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid("body", "text must be valid Unicode (no lone surrogates)") from None
        return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class Limits:
    max_recipients: int = 50
    max_message_bytes: int = 10 * 1024 * 1024
    relay_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Checked:
    """A request that passed `validate`: parsed addresses and decoded attachments."""

    sender: Address
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]
    parts: list[mime.Part]

    def recipients(self) -> list[str]:
        return list(dict.fromkeys(a.email for a in [*self.to, *self.cc, *self.bcc]))


def validate(request: SendRequest, *, limits: Limits) -> Checked:
    """Everything that can be refused without the database: 400, or 413 for an obvious giant."""
    sender = _mailbox(request.sender, "from")
    to = [_mailbox(text, f"to.{i}") for i, text in enumerate(request.to)]
    if not to:
        raise invalid("to", "at least one recipient is required")
    cc = [_mailbox(text, f"cc.{i}") for i, text in enumerate(request.cc)]
    bcc = [_mailbox(text, f"bcc.{i}") for i, text in enumerate(request.bcc)]
    reply_to = [_mailbox(text, f"replyTo.{i}") for i, text in enumerate(request.reply_to)]
    count = len({a.email for a in [*to, *cc, *bcc]})
    if count > limits.max_recipients:
        raise invalid("to", f"{count} recipients; the limit is {limits.max_recipients} per message")
    if any(ch in request.subject for ch in "\r\n\0"):
        raise invalid("subject", "line breaks are not allowed")
    if not request.text and not request.html:
        raise invalid("text", "at least one of text and html is required")
    if len(request.headers) > MAX_HEADERS:
        raise invalid("headers", f"at most {MAX_HEADERS} custom headers")
    for name, value in request.headers.items():
        problem = mime.header_problem(name, value)
        if problem:
            raise invalid(f"headers.{name}", problem)
    if len(request.attachments) > MAX_ATTACHMENTS:
        raise invalid("attachments", f"at most {MAX_ATTACHMENTS} attachments")
    parts = [_decode_attachment(item, f"attachments.{i}") for i, item in enumerate(request.attachments)]
    checked = Checked(sender, to, cc, bcc, reply_to, parts)
    estimate = estimated_size(request, checked)
    if estimate > limits.max_message_bytes:
        raise MessageTooLarge(details={"sizeBytes": estimate, "limitBytes": limits.max_message_bytes})
    return checked


def estimated_size(request: SendRequest, checked: Checked) -> int:
    """Encoded size, before encoding: base64 grows content by 4/3 (and quoted-printable about as much)."""
    body = len((request.text or "").encode()) + len((request.html or "").encode())
    return (body + sum(len(part.content) for part in checked.parts)) * 4 // 3


def invalid(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {message}", details={"fields": [{"path": path, "message": message}]})


@functools.lru_cache(maxsize=4096)  # a sender's From is the same on every call; Address is immutable
def _mailbox(text: str, path: str) -> Address:
    address = parse_mailbox(text, field=path)
    if not address.local_part.isascii():
        # SMTPUTF8 would have to be supported by every relay on the way; we do not ask that.
        raise invalid(path, "non-ASCII local parts are not supported")
    return address


def _decode_attachment(item: Attachment, path: str) -> mime.Part:
    try:
        content = base64.b64decode(item.content, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{path}.content", "not valid base64") from None
    if any(ch in item.filename for ch in "\r\n\0"):
        raise invalid(f"{path}.filename", "line breaks are not allowed")
    content_type = item.content_type or mime.guess_content_type(item.filename)
    if not _CONTENT_TYPE.match(content_type):
        raise invalid(f"{path}.contentType", "expected type/subtype, like application/pdf")
    content_id = item.content_id.strip().removeprefix("<").removesuffix(">") if item.content_id else None
    if content_id is not None and not _CONTENT_ID.match(content_id):
        raise invalid(f"{path}.contentId", "printable characters only, without spaces or angle brackets")
    return mime.Part(item.filename, content, content_type.lower(), content_id or None)
