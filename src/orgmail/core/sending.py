"""The send pipeline (DESIGN.md §5), one named stage per step:

    validate → resolve_sender_domain → drop_suppressed → build_message → sign → write the row (queued)
    → relay → record_result

The row tells the story of the message: `queued` once it is signed and about to go out, then `sent`,
`failed` (the relay did not take it: a retry with the same idempotency key relays the stored bytes
again), `bounced` (the relay refused it) or `suppressed` (nobody left to send to).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from email.utils import getaddresses
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import Address, parse_mailbox
from orgmail.core.domains import load_signing_keys, require_verified_domain
from orgmail.db.sendlog import SendLog, SendLogRow
from orgmail.db.session import is_connection_failure
from orgmail.db.tables import Message, utcnow
from orgmail.errors import (
    AllRecipientsSuppressed,
    IdempotencyConflict,
    InvalidRequest,
    MessageTooLarge,
    RelayRejected,
    RelayUnavailable,
)
from orgmail.ids import new_id
from orgmail.mail import dkim, mime
from orgmail.mail.dkim import KeyVault, SigningKey
from orgmail.mail.relay import Relay, RelayResult, RelayTemporaryFailure

logger = logging.getLogger("orgmail.sending")

T = TypeVar("T")

# Building and signing a small message takes well under a millisecond, less than a hop to a thread;
# past this size (base64 of attachments, body canonicalization) it moves off the event loop.
OFFLOAD_BYTES = 256 * 1024
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
            raise _invalid("body", "text must be valid Unicode (no lone surrogates)") from None
        return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class Limits:
    max_recipients: int = 50
    max_message_bytes: int = 10 * 1024 * 1024
    relay_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Sender:
    """The org's verified domain a From address is on, with its decrypted DKIM keys."""

    domain_id: str
    domain: str
    keys: tuple[SigningKey, ...]


class SenderCache:
    """Verified sender domains seen recently, so a busy sender costs no database round trip for them.

    An entry lives `ttl_seconds`: deleting a domain (or changing its keys) takes effect for sends
    within that time, in every process. Only verified domains are kept; a missing or unverified
    domain always goes to the database.
    """

    def __init__(self, *, ttl_seconds: float = 3.0, max_entries: int = 10_000):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[Sender, float]] = {}  # (org, domain) -> (sender, expires at)

    def get(self, org_id: str, domain: str) -> Sender | None:
        entry = self._entries.get((org_id, domain))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def remember(self, org_id: str, domain: str, sender: Sender) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[(org_id, domain)] = (sender, time.monotonic() + self.ttl_seconds)

    def forget_all(self) -> None:
        self._entries.clear()


senders = SenderCache()


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


async def send_message(
    session: AsyncSession,
    *,
    org_id: str,
    request: SendRequest,
    idempotency_key: str | None,
    relay: Relay,
    vault: KeyVault,
    limits: Limits,
    log: SendLog,
) -> SendLogRow:
    """Send one message and return its row (`sent`); failures raise after the row says why.

    The send log's statements go through `log` (the hot path: see `db.sendlog`); `session` is used
    only to look up a sender domain that `senders` does not have yet.
    """
    request_hash = request.fingerprint()
    checked = validate(request, limits=limits)
    earlier = await log.find(org_id=org_id, idempotency_key=idempotency_key) if idempotency_key else None
    if earlier is None:
        sender = await resolve_sender_domain(session, org_id=org_id, sender=checked.sender, vault=vault)
        already_suppressed = await log.suppressed_among(org_id=org_id, emails=checked.recipients())
        recipients, suppressed = drop_suppressed(checked.recipients(), already_suppressed)
        row = _new_row(org_id, request, checked, sender, suppressed, idempotency_key, request_hash)
        if recipients:
            size_hint = _estimated_size(request, checked)
            message = await _off_loop_if_large(
                build_message, request, checked, message_id=row.message_id, size_hint=size_hint
            )
            signed = await _off_loop_if_large(
                sign, message, domain=sender.domain, keys=list(sender.keys), size_hint=size_hint
            )
            if len(signed) > limits.max_message_bytes:
                raise MessageTooLarge(details={"sizeBytes": len(signed), "limitBytes": limits.max_message_bytes})
            row.raw, row.size_bytes = signed, len(signed)
        else:
            row.status = "suppressed"
        if not await log.insert(row):  # queued (or suppressed)
            # A concurrent request with the same key wrote its row first: its outcome is ours.
            assert idempotency_key is not None  # without a key nothing can conflict
            earlier = await log.find(org_id=org_id, idempotency_key=idempotency_key)
            if earlier is None:
                raise RuntimeError("the row holding this idempotency key vanished")
    if earlier is not None:
        return await _repeat(log, earlier, request_hash=request_hash, relay=relay, limits=limits)

    if row.status == "suppressed":
        raise AllRecipientsSuppressed(details={"messageId": row.id, "suppressedRecipients": suppressed})
    return await relay_and_record(log, row=row, relay=relay, recipients=recipients)


# --- stages --------------------------------------------------------------------------------------
def validate(request: SendRequest, *, limits: Limits) -> Checked:
    """Everything that can be refused without the database: 400, or 413 for an obvious giant."""
    sender = _mailbox(request.sender, "from")
    to = [_mailbox(text, f"to.{i}") for i, text in enumerate(request.to)]
    if not to:
        raise _invalid("to", "at least one recipient is required")
    cc = [_mailbox(text, f"cc.{i}") for i, text in enumerate(request.cc)]
    bcc = [_mailbox(text, f"bcc.{i}") for i, text in enumerate(request.bcc)]
    reply_to = [_mailbox(text, f"replyTo.{i}") for i, text in enumerate(request.reply_to)]
    count = len({a.email for a in [*to, *cc, *bcc]})
    if count > limits.max_recipients:
        raise _invalid("to", f"{count} recipients; the limit is {limits.max_recipients} per message")
    if any(ch in request.subject for ch in "\r\n\0"):
        raise _invalid("subject", "line breaks are not allowed")
    if not request.text and not request.html:
        raise _invalid("text", "at least one of text and html is required")
    if len(request.headers) > MAX_HEADERS:
        raise _invalid("headers", f"at most {MAX_HEADERS} custom headers")
    for name, value in request.headers.items():
        problem = mime.header_problem(name, value)
        if problem:
            raise _invalid(f"headers.{name}", problem)
    if len(request.attachments) > MAX_ATTACHMENTS:
        raise _invalid("attachments", f"at most {MAX_ATTACHMENTS} attachments")
    parts = [_decode_attachment(item, f"attachments.{i}") for i, item in enumerate(request.attachments)]
    checked = Checked(sender, to, cc, bcc, reply_to, parts)
    estimate = _estimated_size(request, checked)
    if estimate > limits.max_message_bytes:
        raise MessageTooLarge(details={"sizeBytes": estimate, "limitBytes": limits.max_message_bytes})
    return checked


async def resolve_sender_domain(session: AsyncSession, *, org_id: str, sender: Address, vault: KeyVault) -> Sender:
    """The org's verified domain the From address is on, with its keys: 400 if never added, 403 if
    not verified. Served from `senders` for a few seconds after a look-up."""
    cached = senders.get(org_id, sender.domain)
    if cached is not None:
        return cached
    async with _autocommit(session):
        domain = await require_verified_domain(session, org_id=org_id, name=sender.domain)
        keys = await load_signing_keys(session, domain_id=domain.id, vault=vault)
    found = Sender(domain_id=domain.id, domain=domain.name, keys=tuple(keys))
    senders.remember(org_id, sender.domain, found)
    return found


def drop_suppressed(recipients: list[str], suppressed: set[str]) -> tuple[list[str], list[str]]:
    """(recipients to relay to, recipients left out because they are on the suppression list)."""
    return [r for r in recipients if r not in suppressed], [r for r in recipients if r in suppressed]


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


def sign(message: bytes, *, domain: str, keys: list[SigningKey]) -> bytes:
    """One DKIM-Signature per key, relaxed/relaxed: RSA-SHA256 first, then Ed25519-SHA256 (RFC 8463)."""
    return dkim.sign(message, domain=domain, keys=keys)


async def relay_and_record(log: SendLog, *, row: SendLogRow, relay: Relay, recipients: list[str]) -> SendLogRow:
    """Hand the stored bytes to the relay, then write down what it said (and answer accordingly)."""
    assert row.raw is not None
    try:
        result = await relay.send(sender=_bare(row.from_address), recipients=recipients, message=row.raw)
    except RelayTemporaryFailure as exc:
        reason = str(exc)
        await _record_durably(lambda: _store_failure(log, row, code="relay_unavailable", reason=reason))
        raise RelayUnavailable(details={"messageId": row.id, "reason": reason}) from None
    except Exception:
        # Not the relay's answer but our own failure: the relay did not take the message either.
        await _record_durably(
            lambda: _store_failure(log, row, code="internal_error", reason="internal error while relaying")
        )
        raise
    await _record_durably(lambda: record_result(log, row=row, result=result))
    if not result.accepted:
        raise RelayRejected(
            details={"messageId": row.id, "response": result.response, "rejectedRecipients": row.rejected_recipients},
        )
    return row


async def record_result(log: SendLog, *, row: SendLogRow, result: RelayResult) -> None:
    """`sent` if anyone got it, else `bounced`; each recipient refused with a 5xx is suppressed."""
    now = utcnow()
    rejected = [dict(email=email, code=code, message=text) for email, (code, text) in result.rejected.items()]
    values = dict(
        status="sent" if result.accepted else "bounced",
        relay_response=result.response,
        rejected_recipients=rejected,
        sent_at=now if result.accepted else None,
        error_code=None if result.accepted else "relay_rejected",
        error_message=None if result.accepted else f"The relay refused the message: {result.response}",
        updated_at=now,
    )
    bounced = [email for email, (code, text) in result.rejected.items() if is_hard_bounce(code, text)]
    if bounced:  # the row and its bounce suppressions change together
        await log.record_bounces(
            row.id, values, org_id=row.org_id, emails=bounced, note=f"rejected by the relay for {row.id}"
        )
    else:
        await log.update(row.id, values)
    for name, value in values.items():
        setattr(row, name, value)


def is_hard_bounce(code: int, text: str) -> bool:
    """A 5xx refusal of the address itself. Enhanced status 5.7.x is about policy ("relay access
    denied", "authentication required"): that is our relay set-up, not the recipient's address, and
    suppressing for it would silence every recipient of a misconfigured relay."""
    return code >= 500 and not text.lstrip().startswith("5.7.")


async def fail_unfinished_sends(session: AsyncSession, *, older_than: timedelta) -> int:
    """At start: a `queued` row older than the relay timeout was cut off mid-relay (a crash, a kill).

    Whether the relay took it is unknown, so it becomes `failed` with `outcome_unknown` and is never
    relayed again on our own initiative; a retry by the caller with its idempotency key still can.
    """
    cutoff = utcnow() - older_than
    async with session.begin():
        result = await session.execute(
            _UPDATE.where(_MESSAGES.c.status == "queued", _MESSAGES.c.updated_at < cutoff).values(
                status="failed",
                error_code="outcome_unknown",
                error_message="The service stopped while relaying; the relay may or may not have the message.",
                updated_at=utcnow(),
            )
        )
    return result.rowcount or 0


# --- idempotency ---------------------------------------------------------------------------------
async def _repeat(log: SendLog, earlier: SendLogRow, *, request_hash: str, relay: Relay, limits: Limits) -> SendLogRow:
    """A key seen before: the first row's outcome, relaying it again only if the relay never took it."""
    if earlier.request_hash != request_hash:
        raise IdempotencyConflict(details={"messageId": earlier.id})
    deadline = asyncio.get_running_loop().time() + limits.relay_timeout_seconds + 5
    while True:
        if earlier.status == "sent":
            return earlier
        if earlier.status == "suppressed":
            raise AllRecipientsSuppressed(
                details={"messageId": earlier.id, "suppressedRecipients": earlier.suppressed_recipients}
            )
        if earlier.status == "bounced":
            raise RelayRejected(
                details={
                    "messageId": earlier.id,
                    "response": earlier.relay_response,
                    "rejectedRecipients": earlier.rejected_recipients,
                }
            )
        if earlier.status == "failed" and await _claim_for_retry(log, earlier):
            return await relay_and_record(log, row=earlier, relay=relay, recipients=_envelope(earlier))
        # Queued: the first request (or another retry) is relaying it right now. Its outcome is ours.
        if asyncio.get_running_loop().time() > deadline:
            raise IdempotencyConflict(
                "A request with this idempotency key is still in progress.", details={"messageId": earlier.id}
            )
        await asyncio.sleep(0.05)
        earlier = await log.get(earlier.id) or earlier


async def _claim_for_retry(log: SendLog, row: SendLogRow) -> bool:
    """Exactly one of several concurrent retries moves a `failed` row back to `queued` and relays it."""
    values = dict(status="queued", error_code=None, error_message=None, updated_at=utcnow())
    if not await log.update(row.id, values, if_status="failed"):
        return False
    for name, value in values.items():
        setattr(row, name, value)
    return True


async def _store_failure(log: SendLog, row: SendLogRow, *, code: str, reason: str) -> None:
    values = dict(status="failed", error_code=code, error_message=reason, updated_at=utcnow())
    await log.update(row.id, values)
    for name, value in values.items():
        setattr(row, name, value)


async def _record_durably(write: Callable[[], Awaitable[T]]) -> T:
    """The relay has answered: that answer must reach the row even if the database is briefly down,
    and even if the caller goes away (the write is shielded from cancellation)."""

    async def keep_trying() -> T:
        delay = 0.1
        while True:
            try:
                return await write()
            except Exception as exc:
                if not is_connection_failure(exc):
                    raise
                logger.warning("cannot record a relay outcome yet (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    task = asyncio.ensure_future(keep_trying())
    _pending_records.add(task)
    task.add_done_callback(_pending_records.discard)
    return await asyncio.shield(task)


_pending_records: set[asyncio.Future] = set()


# --- helpers -------------------------------------------------------------------------------------
_MESSAGES = Message.__table__
_UPDATE = update(_MESSAGES)


@asynccontextmanager
async def _autocommit(session: AsyncSession) -> AsyncIterator[None]:
    """Reads that need no snapshot together, without BEGIN and COMMIT (two round trips)."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    except BaseException:
        await session.rollback()
        raise
    await session.commit()  # releases the connection; in autocommit nothing is sent


def _new_row(
    org_id: str,
    request: SendRequest,
    checked: Checked,
    sender: Sender,
    suppressed: list[str],
    idempotency_key: str | None,
    request_hash: str,
) -> SendLogRow:
    row_id = new_id("msg")
    now = utcnow()
    return SendLogRow(
        id=row_id,
        org_id=org_id,
        from_address=checked.sender.formatted(),
        to=[a.formatted() for a in checked.to],
        cc=[a.formatted() for a in checked.cc],
        bcc=[a.formatted() for a in checked.bcc],
        reply_to=[a.formatted() for a in checked.reply_to],
        subject=request.subject,
        status="queued",
        message_id=f"<{row_id}@{sender.domain}>",  # on the sender's domain, unique by construction
        domain=sender.domain,
        dkim_selector=sender.keys[0].selector if sender.keys else None,
        suppressed_recipients=suppressed,
        rejected_recipients=[],
        tags=dict(request.tags),
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
    )


def _envelope(row: SendLogRow) -> list[str]:
    """The envelope recipients of a stored row: To, Cc and Bcc, minus the suppressed ones."""
    everyone = [addr for _name, addr in getaddresses([*row.to, *row.cc, *row.bcc])]
    suppressed = set(row.suppressed_recipients)
    return [email for email in dict.fromkeys(everyone) if email not in suppressed]


@functools.lru_cache(maxsize=4096)  # a sender's From is the same on every send (~30 µs to parse)
def _bare(formatted: str) -> str:
    return getaddresses([formatted])[0][1]


@functools.lru_cache(maxsize=4096)  # a sender's From is the same on every call; Address is immutable
def _mailbox(text: str, path: str) -> Address:
    address = parse_mailbox(text, field=path)
    if not address.local_part.isascii():
        # SMTPUTF8 would have to be supported by every relay on the way; we do not ask that.
        raise _invalid(path, "non-ASCII local parts are not supported")
    return address


def _decode_attachment(item: Attachment, path: str) -> mime.Part:
    try:
        content = base64.b64decode(item.content, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{path}.content", "not valid base64") from None
    if any(ch in item.filename for ch in "\r\n\0"):
        raise _invalid(f"{path}.filename", "line breaks are not allowed")
    content_type = item.content_type or mime.guess_content_type(item.filename)
    if not _CONTENT_TYPE.match(content_type):
        raise _invalid(f"{path}.contentType", "expected type/subtype, like application/pdf")
    content_id = item.content_id.strip().removeprefix("<").removesuffix(">") if item.content_id else None
    if content_id is not None and not _CONTENT_ID.match(content_id):
        raise _invalid(f"{path}.contentId", "printable characters only, without spaces or angle brackets")
    return mime.Part(item.filename, content, content_type.lower(), content_id or None)


def _estimated_size(request: SendRequest, checked: Checked) -> int:
    """Encoded size, before encoding: base64 grows content by 4/3 (and quoted-printable about as much)."""
    body = len((request.text or "").encode()) + len((request.html or "").encode())
    return (body + sum(len(part.content) for part in checked.parts)) * 4 // 3


async def _off_loop_if_large(function: Callable[..., T], *args, size_hint: int, **kwargs) -> T:
    if size_hint > OFFLOAD_BYTES:
        return await asyncio.to_thread(function, *args, **kwargs)
    return function(*args, **kwargs)


def _invalid(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {message}", details={"fields": [{"path": path, "message": message}]})
