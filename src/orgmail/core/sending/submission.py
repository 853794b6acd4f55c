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
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import format_datetime
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

# compat32 keeps the message as the client wrote it: its headers and body go on, and are signed, unchanged.
_PARSER = BytesParser(policy=policy.compat32)
_SMTP_POLICY = policy.compat32.clone(linesep="\r\n")
# The same headers as a reader sees them: policy.default decodes RFC 2047 words and parses addresses.
_READER = BytesHeaderParser(policy=policy.default)
# What the modern header parser raises on some malformed input instead of noting a defect (CPython 3.11).
_PARSER_BUGS = (IndexError, ValueError, TypeError, AttributeError, UnboundLocalError)


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
    headers = _READER.parsebytes(raw)
    senders = _named(headers, "From")
    if len(senders) != 1:
        raise InvalidRequest("The message needs exactly one From address.")
    sender = _address(*senders[0])
    if submitter.mailbox is not None:
        own = submitter.mailbox.lower()
        if sender.email.lower() != own or any(a.lower() != own for _n, a in _named(headers, "Sender")):
            raise SenderNotAllowed(details={"from": sender.email, "allowed": submitter.mailbox})
    envelope = list(dict.fromkeys(recipients))
    in_envelope = {address.lower() for address in envelope}
    to = [pair for pair in _named(headers, "To") if pair[1].lower() in in_envelope]
    cc = [pair for pair in _named(headers, "Cc") if pair[1].lower() in in_envelope]
    shown = {address.lower() for _name, address in [*to, *cc]}
    message_id = (message.get("Message-ID") or "").strip() or None
    return SubmittedMessage(
        message=message,
        sender=sender,
        recipients=envelope,
        to=[_formatted(*pair) for pair in to],
        cc=[_formatted(*pair) for pair in cc],
        bcc=[address for address in envelope if address.lower() not in shown],
        reply_to=[_formatted(*pair) for pair in _named(headers, "Reply-To")],
        subject=_subject(headers),
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


def _named(headers: EmailMessage, name: str) -> list[tuple[str, str]]:
    """Each address in the header(s) `name`, as (display name, address); groups give their members."""
    try:
        values = headers.get_all(name, [])
        found = [address for value in values for address in value.addresses]
    except _PARSER_BUGS:
        return []
    return [(_readable(a.display_name), _readable(a.addr_spec)) for a in found if a.addr_spec]


def _formatted(name: str, address: str) -> str:
    return f"{name} <{address}>" if name else address


def _subject(headers: EmailMessage) -> str:
    """The Subject on one line, as the text a reader sees."""
    try:
        subject = str(headers.get("Subject") or "")
    except _PARSER_BUGS:
        subject = ""
    return " ".join(_readable(subject).split())


def _readable(text: str) -> str:
    """Header text for the database: 8-bit bytes (kept by the parser as surrogate escapes) read as
    UTF-8, anything that is not UTF-8 U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _address(name: str, address: str) -> Address:
    bare = parse_email(address, field="from")
    return Address(bare.local_part, bare.domain, name or None)
