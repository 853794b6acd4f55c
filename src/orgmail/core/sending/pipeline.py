"""The send pipeline (DESIGN.md §5): `SendPipeline.send` lists its stages in order, and
`SendPipeline.submit` those a message submitted over SMTP joins at signing (§10).

The row tells the story of the message: `queued` once it is signed and about to go out, then `sent`,
`failed` (the relay did not take it, or may have: `error.code` says which), `bounced` (the relay
refused it) or `suppressed` (nobody left to send to).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.core.messages import MessageView
from orgmail.core.sending.relaying import ReturnPath, relay_and_record
from orgmail.core.sending.retries import replay
from orgmail.core.sending.senders import Sender, SenderCache, resolve_sender_domain
from orgmail.core.sending.submission import SubmittedMessage, finish_submitted
from orgmail.core.sending.validation import Checked, Limits, SendRequest, estimated_size, validate
from orgmail.db.sendlog import EventRow, SendLog, SendLogRow
from orgmail.db.tables import utcnow
from orgmail.errors import AllRecipientsSuppressed, MessageTooLarge
from orgmail.ids import new_id
from orgmail.mail import dkim, mime
from orgmail.mail.dkim import KeyVault
from orgmail.mail.relay import Relay

T = TypeVar("T")

# Building and signing a small message takes well under a millisecond, less than a hop to a thread;
# past this size (base64 of attachments, body canonicalization) it moves off the event loop.
OFFLOAD_BYTES = 256 * 1024
RESUBMISSION_WINDOW = timedelta(hours=24)  # a Message-ID submitted again within it is the same message


@dataclass(frozen=True)
class SendPipeline:
    """The long-lived parts every send uses, made once at start (the app's lifespan)."""

    relay: Relay
    vault: KeyVault
    log: SendLog
    limits: Limits
    senders: SenderCache = field(default_factory=SenderCache)
    return_path: ReturnPath | None = None  # with ORGMAIL_BOUNCE_DOMAIN: VERP and DSN requests

    async def send(
        self,
        session: AsyncSession,
        *,
        org_id: str,
        request: SendRequest,
        idempotency_key: str | None = None,
        retry_unknown: bool = False,
    ) -> MessageView:
        """Send one message and return its row (`sent`); failures raise after the row says why.

        `session` is used only to look up a sender domain the cache does not have yet; the send
        log's statements go through `log` (the hot path: see `db.sendlog`).
        """
        request_hash = request.fingerprint()
        checked = validate(request, limits=self.limits)
        earlier = await find_earlier_send(self.log, org_id=org_id, idempotency_key=idempotency_key)
        if earlier is None:
            sender = await resolve_sender_domain(
                session, org_id=org_id, sender=checked.sender, vault=self.vault, cache=self.senders
            )
            recipients, suppressed = await drop_suppressed(self.log, org_id=org_id, recipients=checked.recipients())
            row = new_row(org_id, request, checked, sender, suppressed, idempotency_key, request_hash)
            if recipients:
                row.raw = await build_and_sign(request, checked, sender=sender, row=row, limits=self.limits)
            earlier = await write_row(self.log, row)
        if earlier is not None:
            return await self.replay(earlier, request_hash=request_hash, retry_unknown=retry_unknown)
        return await self.relay_written(row, recipients=recipients)

    async def submit(self, session: AsyncSession, *, org_id: str, submitted: SubmittedMessage) -> MessageView:
        """A message submitted over SMTP (DESIGN.md §10), joining the stages at signing: its Message-ID
        is the retry key, so one seen from the org within 24 h is replayed (first one wins)."""
        earlier = await find_earlier_submission(self.log, org_id=org_id, message_id=submitted.message_id)
        if earlier is None:
            sender = await resolve_sender_domain(
                session, org_id=org_id, sender=submitted.sender, vault=self.vault, cache=self.senders
            )
            recipients, suppressed = await drop_suppressed(self.log, org_id=org_id, recipients=submitted.recipients)
            row = submitted_row(org_id, submitted, sender, suppressed)
            if recipients:
                row.raw = await finish_and_sign(submitted, sender=sender, row=row, limits=self.limits)
            earlier = await write_row(self.log, row)
        if earlier is not None:
            return await self.replay(earlier, request_hash=earlier.request_hash, retry_unknown=False)
        return await self.relay_written(row, recipients=recipients)

    async def replay(self, earlier: SendLogRow, *, request_hash: str | None, retry_unknown: bool) -> MessageView:
        """The stage for a message seen before: its row's outcome, relayed again only if never taken."""
        row = await replay(
            self.log,
            earlier,
            request_hash=request_hash or "",
            retry_unknown=retry_unknown,
            relay=self.relay,
            limits=self.limits,
            return_path=self.return_path,
        )
        return MessageView.of(row)

    async def relay_written(self, row: SendLogRow, *, recipients: list[str]) -> MessageView:
        """The relay stage for a freshly written row (a `suppressed` one has nobody to go to)."""
        if row.status == "suppressed":
            raise AllRecipientsSuppressed(
                details={"messageId": row.id, "suppressedRecipients": row.suppressed_recipients}
            )
        relayed = await relay_and_record(
            self.log, row=row, relay=self.relay, recipients=recipients, return_path=self.return_path
        )
        return MessageView.of(relayed)


# --- stages --------------------------------------------------------------------------------------
async def find_earlier_send(log: SendLog, *, org_id: str, idempotency_key: str | None) -> SendLogRow | None:
    """The row an earlier request with this idempotency key wrote, if any: its outcome is ours."""
    return await log.find(org_id=org_id, idempotency_key=idempotency_key) if idempotency_key else None


async def find_earlier_submission(log: SendLog, *, org_id: str, message_id: str | None) -> SendLogRow | None:
    """The org's row with this Message-ID from the last 24 h (DESIGN.md §10), if any."""
    if message_id is None:
        return None
    return await log.find_by_message_id(org_id=org_id, message_id=message_id, since=utcnow() - RESUBMISSION_WINDOW)


async def drop_suppressed(log: SendLog, *, org_id: str, recipients: list[str]) -> tuple[list[str], list[str]]:
    """(recipients to relay to, recipients left out because the org suppresses them)."""
    suppressed = await log.suppressed_among(org_id=org_id, emails=recipients)
    return [r for r in recipients if r not in suppressed], [r for r in recipients if r in suppressed]


async def build_and_sign(
    request: SendRequest, checked: Checked, *, sender: Sender, row: SendLogRow, limits: Limits
) -> bytes:
    """The MIME message, DKIM-signed once per key (RSA first, then Ed25519): 413 past the limit."""
    size_hint = estimated_size(request, checked)
    message = await _off_loop_if_large(build_message, request, checked, message_id=row.message_id, size_hint=size_hint)
    signed = await _off_loop_if_large(dkim.sign, message, domain=sender.domain, keys=sender.keys, size_hint=size_hint)
    if len(signed) > limits.max_message_bytes:
        raise MessageTooLarge(details={"sizeBytes": len(signed), "limitBytes": limits.max_message_bytes})
    row.size_bytes = len(signed)
    return signed


def build_message(request: SendRequest, checked: Checked, *, message_id: str) -> bytes:
    """The MIME message as CRLF bytes (Message-ID on the sender's domain, Date now)."""
    draft = mime.Draft(
        sender=checked.sender,
        to=checked.to,
        cc=checked.cc,
        reply_to=checked.reply_to,
        subject=request.subject,
        message_id=message_id,
        date=utcnow(),
        text=request.text,
        html=request.html,
        headers=request.headers,
        attachments=checked.parts,
    )
    return mime.build(draft)


async def finish_and_sign(submitted: SubmittedMessage, *, sender: Sender, row: SendLogRow, limits: Limits) -> bytes:
    """A submitted message without Bcc:, with Date and Message-ID, DKIM-signed once per key: 552
    (`message_too_large`) when the signed form is past the limit."""
    size_hint = submitted.size_bytes
    message = await _off_loop_if_large(finish_submitted, submitted, message_id=row.message_id, size_hint=size_hint)
    signed = await _off_loop_if_large(dkim.sign, message, domain=sender.domain, keys=sender.keys, size_hint=size_hint)
    if len(signed) > limits.max_message_bytes:
        raise MessageTooLarge(details={"sizeBytes": len(signed), "limitBytes": limits.max_message_bytes})
    row.size_bytes = len(signed)
    return signed


async def write_row(log: SendLog, row: SendLogRow) -> SendLogRow | None:
    """Write the row (`queued`, or `suppressed` with nobody to send to). None once written; if a
    concurrent request with the same idempotency key wrote its row first, that row."""
    events = []
    if row.raw is None:
        row.status = row.last_event = "suppressed"
        events.append(EventRow(id=new_id("evt"), org_id=row.org_id, message_id=row.id, type="suppressed"))
    if await log.insert(row, events=events):  # a suppressed row and its event, together
        return None
    assert row.idempotency_key is not None  # without a key nothing can conflict
    earlier = await log.find(org_id=row.org_id, idempotency_key=row.idempotency_key)
    if earlier is None:
        raise RuntimeError("the row holding this idempotency key vanished")
    return earlier


def new_row(
    org_id: str,
    request: SendRequest,
    checked: Checked,
    sender: Sender,
    suppressed: list[str],
    idempotency_key: str | None,
    request_hash: str,
) -> SendLogRow:
    return _queued_row(
        org_id,
        sender,
        from_address=checked.sender.formatted(),
        to=[a.formatted() for a in checked.to],
        cc=[a.formatted() for a in checked.cc],
        bcc=[a.formatted() for a in checked.bcc],
        reply_to=[a.formatted() for a in checked.reply_to],
        subject=request.subject,
        suppressed=suppressed,
        tags=dict(request.tags),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


def submitted_row(org_id: str, submitted: SubmittedMessage, sender: Sender, suppressed: list[str]) -> SendLogRow:
    """The row of a message submitted over SMTP: the client's Message-ID, `source: "smtp"`."""
    return _queued_row(
        org_id,
        sender,
        from_address=submitted.sender.formatted(),
        to=submitted.to,
        cc=submitted.cc,
        bcc=submitted.bcc,
        reply_to=submitted.reply_to,
        subject=submitted.subject,
        suppressed=suppressed,
        tags={},
        idempotency_key=submission_key(submitted.message_id) if submitted.message_id else None,
        request_hash=submitted.fingerprint,
        message_id=submitted.message_id,
        source="smtp",
    )


def submission_key(message_id: str) -> str:
    """The idempotency key of a submitted Message-ID, so that two submissions of it at the same moment
    write one row (the send log's unique key), the second replaying the first. The lookup before it
    (`find_earlier_submission`) applies the 24 h window; the day in the key only keeps a Message-ID
    used again days later from meeting its old row."""
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()[:40]
    return f"smtp:{utcnow():%Y-%m-%d}:{digest}"


def _queued_row(
    org_id: str,
    sender: Sender,
    *,
    from_address: str,
    to: list[str],
    cc: list[str],
    bcc: list[str],
    reply_to: list[str],
    subject: str,
    suppressed: list[str],
    tags: dict[str, str],
    idempotency_key: str | None,
    request_hash: str,
    message_id: str | None = None,
    source: str = "api",
) -> SendLogRow:
    row_id = new_id("msg")
    now = utcnow()
    return SendLogRow(
        id=row_id,
        org_id=org_id,
        from_address=from_address,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        status="queued",
        # Ours is on the sender's domain, unique by construction.
        message_id=message_id or f"<{row_id}@{sender.domain}>",
        domain=sender.domain,
        dkim_selector=sender.keys[0].selector if sender.keys else None,
        suppressed_recipients=suppressed,
        rejected_recipients=[],
        tags=tags,
        size_bytes=0,
        relay_response=None,
        error_code=None,
        error_message=None,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        raw=None,
        created_at=now,
        updated_at=now,
        sent_at=None,
        source=source,
    )


async def _off_loop_if_large(function: Callable[..., T], *args, size_hint: int, **kwargs) -> T:
    if size_hint > OFFLOAD_BYTES:
        return await asyncio.to_thread(function, *args, **kwargs)
    return function(*args, **kwargs)
