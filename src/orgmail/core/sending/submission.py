"""SMTP submission's intake (DESIGN.md §10), knowing nothing of SMTP: who is submitting (an API key or a
mailbox's own password), whether a recipient may be sent to, and the submitted message as the send
pipeline takes it at its signing stage (`SendPipeline.submit`).

The listener (`orgmail.mail.submission`) calls `SubmissionIntake`; failures are `orgmail.errors`
types, which the listener maps to SMTP replies in one table.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.generator import BytesGenerator
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import Address, parse_email
from orgmail.core.messages import MessageView
from orgmail.core.orgs import org_for_key
from orgmail.db.tables import Mailbox, Suppression, utcnow
from orgmail.errors import InvalidRequest, OrgmailError, RecipientSuppressed, SenderNotAllowed, Unauthorized
from orgmail.mail.passwords import verify_dovecot_hash

if TYPE_CHECKING:
    from orgmail.core.sending.pipeline import SendPipeline
    from orgmail.core.sending.validation import Limits

# compat32 keeps header values as the client wrote them and writes the body back byte for byte.
_PARSER = BytesParser(policy=policy.compat32)
_SMTP_POLICY = policy.compat32.clone(linesep="\r\n")


@dataclass(frozen=True)
class Submitter:
    """Who authenticated: an application (an API key of the org) or a member (one mailbox)."""

    org_id: str
    mailbox: str | None = None  # the member's own address: the only From it may use


@dataclass(frozen=True)
class SubmittedMessage:
    """A message as an SMTP client submitted it, parsed (stdlib `email`), with its envelope."""

    message: Message
    sender: Address  # the header From
    recipients: list[str]  # the envelope's RCPTs, the only addresses it goes to
    to: list[str]
    cc: list[str]
    bcc: list[str]  # envelope recipients neither in To nor in Cc (a stripped Bcc: header's among them)
    reply_to: list[str]
    subject: str
    message_id: str | None  # the client's, `<…>`; None when it set none
    fingerprint: str  # a hash of the bytes as submitted
    size_bytes: int


def parse_submission(raw: bytes, *, recipients: Sequence[str], submitter: Submitter) -> SubmittedMessage:
    """The submitted bytes as a message: 400 without a single From; a member's From (and Sender) must
    be its own address (403 `sender_not_allowed`)."""
    message = _PARSER.parsebytes(raw)
    if message.defects and not message.keys():
        raise InvalidRequest("The message has no header.")
    senders = _addresses(message, "From")
    if len(senders) != 1:
        raise InvalidRequest("The message needs exactly one From address.")
    sender = _address(senders[0])
    if submitter.mailbox is not None:
        own = submitter.mailbox.lower()
        if sender.email.lower() != own or any(a.lower() != own for a in _addresses(message, "Sender")):
            raise SenderNotAllowed(details={"from": sender.email, "allowed": submitter.mailbox})
    envelope = list(dict.fromkeys(recipients))
    in_envelope = {address.lower() for address in envelope}
    to = [text for text in _formatted(message, "To") if _bare(text) in in_envelope]
    cc = [text for text in _formatted(message, "Cc") if _bare(text) in in_envelope]
    shown = {_bare(text) for text in [*to, *cc]}
    message_id = (message.get("Message-ID") or "").strip() or None
    return SubmittedMessage(
        message=message,
        sender=sender,
        recipients=envelope,
        to=to,
        cc=cc,
        bcc=[address for address in envelope if address.lower() not in shown],
        reply_to=_formatted(message, "Reply-To"),
        subject=_text(message.get("Subject") or ""),
        message_id=message_id if message_id and len(message_id) <= 900 else None,
        fingerprint=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
    )


def finish_submitted(submitted: SubmittedMessage, *, message_id: str) -> bytes:
    """The message as it goes out, before signing: no Bcc: header, a Date and a Message-ID (§10)."""
    message = submitted.message
    del message["Bcc"]
    del message["Resent-Bcc"]
    if message.get("Date") is None:
        message["Date"] = format_datetime(utcnow())
    if submitted.message_id is None:
        del message["Message-ID"]
        message["Message-ID"] = message_id
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_SMTP_POLICY).flatten(message)
    return out.getvalue()


class SubmissionIntake:
    """What the submission listener asks of the domain: credentials, recipients, messages."""

    def __init__(self, session_factory: Callable[[], AsyncSession], pipeline: SendPipeline):
        self._session_factory = session_factory
        self._pipeline = pipeline

    @property
    def limits(self) -> Limits:
        return self._pipeline.limits

    async def authenticate(self, *, user: str, password: str) -> Submitter:
        """A mailbox address and that mailbox's password, or any other user name and an API key
        (checked as the HTTP API checks a bearer key); Unauthorized otherwise."""
        async with self._session_factory() as session:
            mailbox = None
            if "@" in user:
                found = await session.execute(
                    select(Mailbox.org_id, Mailbox.address, Mailbox.password_hash).where(
                        Mailbox.address == user.strip().lower()
                    )
                )
                mailbox = found.first()
            if mailbox is None:
                org_id = await org_for_key(session, password)
                return Submitter(org_id=org_id)
        # Argon2id is deliberately slow (tens of ms of CPU): not on the event loop.
        if not await asyncio.to_thread(verify_dovecot_hash, mailbox.password_hash, password):
            raise Unauthorized("Wrong mailbox password.")
        return Submitter(org_id=mailbox.org_id, mailbox=mailbox.address)

    async def check_recipient(self, submitter: Submitter, address: str) -> None:
        """RecipientSuppressed (naming the reason) when the org suppresses `address`."""
        # The send log's look-up is the hot path's (one pooled statement); the reason only when needed.
        if not await self._pipeline.log.suppressed_among(org_id=submitter.org_id, emails=[address]):
            return
        async with self._session_factory() as session:
            reason = await session.scalar(
                select(Suppression.reason).where(
                    Suppression.org_id == submitter.org_id, Suppression.email == address.lower()
                )
            )
        if reason is not None:
            raise RecipientSuppressed(f"The recipient is suppressed ({reason}).", details={"reason": reason})

    async def submit(self, submitter: Submitter, *, recipients: Sequence[str], raw: bytes) -> MessageView:
        """Parse, check and send (or, for a Message-ID seen in the last 24 h, replay) one message."""
        submitted = parse_submission(raw, recipients=recipients, submitter=submitter)
        async with self._session_factory() as session:
            return await self._pipeline.submit(session, org_id=submitter.org_id, submitted=submitted)


def row_id_of(error: OrgmailError) -> str | None:
    """The send-log row an error is about, when it names one."""
    row_id = (error.details or {}).get("messageId")
    return row_id if isinstance(row_id, str) else None


def _addresses(message: Message, name: str) -> list[str]:
    return [address for _name, address in getaddresses(_raw_values(message, name)) if address]


def _formatted(message: Message, name: str) -> list[str]:
    """Each address of the header as `Name <addr>` (or the bare address), display names decoded."""
    pairs = getaddresses(_raw_values(message, name))
    return [f"{_text(n)} <{a}>" if n else a for n, a in pairs if a]


def _raw_values(message: Message, name: str) -> list[str]:
    """The header's values as text; raw 8-bit bytes (compat32 hands them over as a `Header`) read as UTF-8."""
    return [_undecoded(value) for value in message.get_all(name, [])]


def _undecoded(value: object) -> str:
    if isinstance(value, Header):
        return "".join(_decoded(part, "utf-8") if isinstance(part, bytes) else part for part, _ in decode_header(value))
    return str(value)


def _text(value: object) -> str:
    """A header value as the text a reader sees, on one line: RFC 2047 encoded words decoded, 8-bit
    bytes read as UTF-8, anything undecodable U+FFFD (the database stores text, not bytes)."""
    try:
        parts = decode_header(value if isinstance(value, Header) else str(value))
    except (ValueError, LookupError, TypeError):
        parts = [(_undecoded(value), None)]
    text = "".join(_decoded(part, charset) if isinstance(part, bytes) else part for part, charset in parts)
    return " ".join(text.split())


def _decoded(raw: bytes, charset: str | None) -> str:
    if charset is None or charset == "unknown-8bit":
        charset = "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _bare(formatted: str) -> str:
    return getaddresses([formatted])[0][1].lower()


def _address(text: str) -> Address:
    return parse_email(text, field="from")
