"""What a delivery report does (DESIGN.md §9): the events, suppressions and status it brings to the
message it is about, and the `inbound_reports` row that keeps it.

A report is found its message by the VERP address it was sent to (`bounces+<msg id>@<bounce domain>`),
else (ARF sent to `feedback@<bounce domain>`) by the original's VERP Return-Path or its Message-ID.
The report row, its events (with their webhook jobs), its suppressions and the message's new status
are written in one transaction; a report already stored (same Message-ID, or same bytes without
one) writes nothing again. A report that cannot be read, or whose processing fails, is still kept
whole, as `unparsed`, with no event. Everything it writes belongs to the message's own org.

Only the message's own envelope recipients get events: a report is mail anyone can send to a VERP
address, and must not make an org suppress an address it never sent this message to.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orgmail.core.sending.relaying import envelope_recipients
from orgmail.db.sendlog import EventRow, SendLogRow, add_suppressions, write_events
from orgmail.db.session import is_connection_failure
from orgmail.db.tables import InboundReport, Message, MessageEvent, utcnow
from orgmail.errors import Unavailable
from orgmail.ids import new_id
from orgmail.mail.inbound import ReportResult
from orgmail.mail.reports import (
    DeliveryStatus,
    Report,
    is_feedback_address,
    is_postmaster,
    message_row_id,
    parse_report,
    verp_message_id,
    xtext_decoded,
)

logger = logging.getLogger("orgmail.feedback")

_REPORTS = cast(Table, InboundReport.__table__)
_MESSAGES = cast(Table, Message.__table__)
_EVENTS = cast(Table, MessageEvent.__table__)
_MESSAGE_COLUMNS = [column for column in _MESSAGES.c if column.key != "raw"]  # the signed bytes are not needed

COMPLAINT_TYPES = frozenset({"abuse", "fraud"})  # other feedback types are kept and counted, nothing more
DELIVERED_ACTIONS = frozenset({"delivered", "relayed", "expanded"})


class InboundReports:
    """The reports addressed to the bounce domain: which recipients take them, and what each does.
    The inbound listener's `ReportSink` (mail/inbound.py)."""

    def __init__(self, engine: AsyncEngine, *, bounce_domain: str):
        self._engine = engine
        self._bounce_domain = bounce_domain

    async def accepts(self, recipient: str) -> bool:
        return await accepts_recipient(self._engine, bounce_domain=self._bounce_domain, address=recipient)

    async def record(self, *, envelope_sender: str, envelope_recipients: list[str], raw: bytes) -> ReportResult:
        return await record_report(
            self._engine,
            bounce_domain=self._bounce_domain,
            envelope_sender=envelope_sender,
            envelope_recipients=envelope_recipients,
            raw=raw,
        )


async def accepts_recipient(engine: AsyncEngine, *, bounce_domain: str, address: str) -> bool:
    """`feedback@` and `postmaster@<bounce domain>`, or `bounces+<id>@<bounce domain>` for a message
    in the send log."""
    if is_feedback_address(address, bounce_domain=bounce_domain) or is_postmaster(address, bounce_domain=bounce_domain):
        return True
    message_id = verp_message_id(address, bounce_domain=bounce_domain)
    if message_id is None:
        return False
    with _unavailable_on_connection_failure():
        async with engine.connect() as connection:
            found = await connection.scalar(select(_MESSAGES.c.id).where(_MESSAGES.c.id == message_id))
    return found is not None


async def record_report(
    engine: AsyncEngine,
    *,
    bounce_domain: str,
    envelope_sender: str,
    envelope_recipients: Sequence[str],
    raw: bytes,
) -> ReportResult:
    """Store the report and do what it says, durably, before the listener answers 250.
    Raises `Unavailable` when the database cannot be reached (the sender will try again)."""
    report = await asyncio.to_thread(parse_report, raw)  # up to 10 MB of anyone's mail: not on the loop
    row = _report_row(report, raw, envelope_sender=envelope_sender, envelope_recipients=envelope_recipients)
    with _unavailable_on_connection_failure():
        try:
            return await _record(
                engine, report, row, envelope_recipients=envelope_recipients, bounce_domain=bounce_domain
            )
        except Exception as exc:
            if is_connection_failure(exc) or _is_transient(exc):
                raise Unavailable() from exc  # 451: the sender tries again, and nothing was lost
            logger.exception("report %s could not be processed; it is kept whole, unparsed", row["id"])
        verp_ids = (verp_message_id(r, bounce_domain=bounce_domain) for r in envelope_recipients)
        row.update(result="unparsed", message_id=next(filter(None, verp_ids), None))
        async with engine.begin() as connection:
            return "unparsed" if await _insert_report(connection, row) else "duplicate"


def dedupe_key(report: Report, raw: bytes) -> str:
    """What identifies a report: its Message-ID, or the SHA-256 of its bytes when it has none."""
    return report.message_id or f"sha256:{hashlib.sha256(raw).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Consequences:
    """What a report does to one message: its new events, the addresses it suppresses (by reason),
    and the message's new values."""

    events: list[EventRow]
    suppressions: dict[str, list[str]]  # reason ("bounce", "complaint") -> addresses
    message_values: dict[str, Any]


def consequences(report: Report, *, message: SendLogRow, bounced_before: set[str], report_id: str) -> Consequences:
    """DESIGN.md §9's table, per recipient; `bounced_before`: the lower-cased recipients the message
    already has a `bounced` event for (the relay's refusals included)."""
    now = utcnow()
    recipients = envelope_recipients(message)
    events: list[EventRow] = []
    suppressions: dict[str, list[str]] = {}

    def event(kind: str, recipient: str | None, **fields: Any) -> None:
        if any(e.type == kind and e.recipient == recipient for e in events):
            return  # a report that names a recipient twice (Original- and Final-Recipient blocks)
        events.append(
            EventRow(
                id=new_id("evt"),
                org_id=message.org_id,
                message_id=message.id,
                type=kind,
                recipient=recipient,
                report_id=report_id,
                created_at=now,
                **fields,
            )
        )

    envelope_id = xtext_decoded(report.envelope_id) if report.envelope_id else None
    if report.kind == "dsn" and envelope_id is not None and envelope_id.lower() != message.id.lower():
        # We sent ENVID=<message id>: a DSN naming another one is not about this message (or forged).
        logger.info("report %s names envelope id %r, not %s; no events", report_id, envelope_id, message.id)
    elif report.kind == "dsn":
        for delivery in report.deliveries:
            recipient = _delivery_recipient(delivery, recipients)
            if recipient is None:
                logger.info("report %s names no recipient of %s; ignored for it", report_id, message.id)
                continue
            outcome = _dsn_outcome(delivery, heuristic=report.heuristic)
            if outcome is None:
                continue
            kind, bounce_type = outcome
            diagnostic = delivery.diagnostic
            if kind == "delivered":  # the Action says how far it got: delivered, or handed on
                diagnostic = f"{delivery.action}: {diagnostic}" if diagnostic else delivery.action
            event(kind, recipient, bounce_type=bounce_type, smtp_status=delivery.status, diagnostic=diagnostic)
            if bounce_type == "hard":
                suppressions.setdefault("bounce", []).append(recipient)
    elif report.kind == "arf" and report.feedback_type in COMPLAINT_TYPES:
        named = [r for r in (_match(c, recipients) for c in report.complained_recipients) if r is not None]
        # Without an Original-Rcpt-To the original's only recipient; one naming someone else: nobody.
        unnamed = not report.complained_recipients
        complainers = named or (recipients if len(recipients) == 1 and unnamed else [])
        diagnostic = f"feedback-type: {report.feedback_type}"
        for recipient in complainers:
            event("complained", recipient, diagnostic=diagnostic)
            suppressions.setdefault("complaint", []).append(recipient)
        if not complainers:  # several recipients, none named: the complaint is the message's
            event("complained", None, diagnostic=diagnostic)

    values: dict[str, Any] = {}
    if events:
        values.update(last_event=events[-1].type, updated_at=now)
        bounced = bounced_before | {e.recipient.lower() for e in events if e.type == "bounced" and e.recipient}
        if message.status == "sent" and recipients and all(r.lower() in bounced for r in recipients):
            values["status"] = "bounced"  # nobody got it
    return Consequences(events=events, suppressions=suppressions, message_values=values)


# --- the transaction -----------------------------------------------------------------------------


async def _record(
    engine: AsyncEngine,
    report: Report,
    row: dict[str, Any],
    *,
    envelope_recipients: Sequence[str],
    bounce_domain: str,
) -> ReportResult:
    async with engine.begin() as connection:
        # The report row first: a duplicate stops here, and on SQLite this INSERT begins the write
        # transaction, so what is read below cannot change before the commit.
        if not await _insert_report(connection, row):
            return "duplicate"
        message = await _find_message(connection, report, envelope_recipients, bounce_domain=bounce_domain)
        if message is None:
            return row["result"]
        await connection.execute(
            update(_REPORTS).where(_REPORTS.c.id == row["id"]).values(org_id=message.org_id, message_id=message.id)
        )
        if row["result"] == "unparsed":
            return "unparsed"
        bounced_before = await _bounced_recipients(connection, message.id)
        done = consequences(report, message=message, bounced_before=bounced_before, report_id=row["id"])
        await write_events(connection, done.events)
        for reason, emails in done.suppressions.items():
            note = f"{'hard bounce' if reason == 'bounce' else 'complaint'} reported for {message.id}"
            await add_suppressions(connection, org_id=message.org_id, emails=emails, reason=reason, note=note)
        if done.message_values:
            await connection.execute(update(_MESSAGES).where(_MESSAGES.c.id == message.id).values(done.message_values))
        return "parsed"


def _report_row(
    report: Report, raw: bytes, *, envelope_sender: str, envelope_recipients: Sequence[str]
) -> dict[str, Any]:
    usable = report.kind != "unknown" and (report.kind != "dsn" or bool(report.deliveries))
    return dict(
        id=new_id("rpt"),
        dedupe_key=dedupe_key(report, raw),
        kind=report.kind,
        result="parsed" if usable else "unparsed",
        org_id=None,
        message_id=None,
        envelope_sender=_storable(envelope_sender),
        envelope_recipient=", ".join(_storable(r) for r in envelope_recipients),
        raw=raw,
        received_at=utcnow(),
    )


async def _insert_report(connection: AsyncConnection, row: dict[str, Any]) -> bool:
    """Insert-or-ignore on the dedupe key: did this report get its row? (On PostgreSQL a concurrent
    copy of the same report waits here for the first one's commit, then is a duplicate.)"""
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(_REPORTS).values(row).on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await connection.execute(statement)
    return cast(Any, result).rowcount == 1


async def _find_message(
    connection: AsyncConnection, report: Report, envelope_recipients: Sequence[str], *, bounce_domain: str
) -> SendLogRow | None:
    """The message the report is about: by the VERP recipient of the report, else by the original's
    VERP Return-Path, else by the original's Message-ID. Locked (PostgreSQL) until the commit, so
    that two reports on one message decide its status one after the other."""
    addresses = [*envelope_recipients, report.original_return_path or ""]
    for row_id in dict.fromkeys(verp_message_id(a, bounce_domain=bounce_domain) for a in addresses):
        if row_id is not None and (found := await _message(connection, row_id)) is not None:
            return found
    header = report.original_message_id
    row_id = message_row_id(header) if header else None
    if header and row_id:
        return await _message(connection, row_id, message_id_header=header)
    return None


async def _message(
    connection: AsyncConnection, row_id: str, *, message_id_header: str | None = None
) -> SendLogRow | None:
    query = select(*_MESSAGE_COLUMNS).where(_MESSAGES.c.id == row_id)
    if message_id_header is not None:
        query = query.where(func.lower(_MESSAGES.c.message_id) == message_id_header.lower())
    found = (await connection.execute(query.with_for_update())).first()
    return SendLogRow(**found._mapping, raw=None) if found is not None else None


async def _bounced_recipients(connection: AsyncConnection, message_id: str) -> set[str]:
    query = (
        select(func.lower(_EVENTS.c.recipient))
        .distinct()
        .where(_EVENTS.c.message_id == message_id, _EVENTS.c.type == "bounced", _EVENTS.c.recipient.is_not(None))
    )
    return set((await connection.scalars(query)).all())


# --- per recipient -------------------------------------------------------------------------------


def _dsn_outcome(delivery: DeliveryStatus, *, heuristic: bool) -> tuple[str, str | None] | None:
    """(event type, bounce type) for one DSN recipient; None for an Action that reports nothing."""
    if delivery.action == "failed":
        status = delivery.status
        if status is None:  # no RFC 3463 code: only flufl.bounce's "permanent" makes it hard
            return "bounced", "hard" if heuristic else "soft"
        # 5.7.x is policy (spam filters, relay set-up), 4.x.x a relay that gave up: neither says the
        # address is bad, and suppressing for them would silence good recipients.
        hard = status.startswith("5.") and not status.startswith("5.7.")
        return "bounced", "hard" if hard else "soft"
    if delivery.action == "delayed":
        return "deferred", None
    if delivery.action in DELIVERED_ACTIONS:
        return "delivered", None
    return None


def _delivery_recipient(delivery: DeliveryStatus, recipients: list[str]) -> str | None:
    """The envelope recipient a DSN block is about: its Original-Recipient (as sent in ORCPT, or
    xtext-encoded), else its Final-Recipient; a block naming nobody belongs to a message's only
    recipient. A block naming another address is about nobody here: anyone can mail a VERP address,
    and a forged DSN must not suppress an address the message was sent to."""
    candidates = (
        delivery.original_recipient,
        xtext_decoded(delivery.original_recipient) if delivery.original_recipient else None,
        delivery.final_recipient,
    )
    for candidate in candidates:
        if candidate and (found := _match(candidate, recipients)) is not None:
            return found
    named_anyone = any(candidates)
    return recipients[0] if len(recipients) == 1 and not named_anyone else None


def _match(address: str, recipients: list[str]) -> str | None:
    lowered = address.lower()
    return next((r for r in recipients if r.lower() == lowered), None)


def _storable(text: str) -> str:
    """An envelope address as aiosmtpd gives it (undecodable bytes as surrogates), fit for any database."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


# SQLSTATEs of a statement that failed for the moment, not for the report: serialization failure and
# deadlock (class 40), lock not available (55P03), cancelled by a statement timeout (57014).
_TRANSIENT_SQLSTATES = ("40", "55P03", "57014")


def _is_transient(exc: BaseException) -> bool:
    original = getattr(exc, "orig", None)
    sqlstate = getattr(original, "sqlstate", None) or getattr(getattr(original, "__cause__", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES)


@contextmanager
def _unavailable_on_connection_failure() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_connection_failure(exc):
            raise Unavailable() from exc
        raise
