"""The relay stage, and what the relay's answer does to the row.

The relay's answer is the truth about the message, so it reaches the row even while the database is
briefly down (`record_durably`). Only an answer that leaves the outcome open is an exception here.
The outcome (the row's new values and its events, ids included) is made once, before the first
attempt to write it: a write retried after a lost commit reply writes the same events, which the
send log then skips, instead of new ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from typing import TypeVar

from orgmail.db.sendlog import EventRow, SendLog, SendLogRow
from orgmail.db.session import is_connection_failure
from orgmail.db.tables import utcnow
from orgmail.errors import RelayOutcomeUnknown, RelayRejected, RelayUnavailable
from orgmail.ids import new_id
from orgmail.mail.relay import DsnRequest, Relay, RelayResult, RelayTemporaryFailure
from orgmail.mail.relay import RelayOutcomeUnknown as NoReplyAfterData
from orgmail.mail.reports import verp_address
from orgmail.throttled_log import ThrottledLog

logger = logging.getLogger("orgmail.sending")

T = TypeVar("T")

OUTCOME_UNKNOWN = "outcome_unknown"  # the error code of a row the relay may or may not have taken


@dataclass(frozen=True)
class ReturnPath:
    """Where bounces go (DESIGN.md §9): the VERP envelope sender `bounces+<message id>@<bounce domain>`,
    so every DSN names its message, and the notifications asked of a relay that offers DSN."""

    bounce_domain: str
    notify: tuple[str, ...] = ("FAILURE", "DELAY")

    def sender_for(self, row_id: str) -> str:
        return verp_address(row_id, bounce_domain=self.bounce_domain)


async def relay_and_record(
    log: SendLog, *, row: SendLogRow, relay: Relay, recipients: list[str], return_path: ReturnPath | None = None
) -> SendLogRow:
    """Hand the stored bytes to the relay, then write down what it said (and answer accordingly)."""
    assert row.raw is not None
    if return_path is None:
        sender, dsn = _bare(row.from_address), None
    else:
        sender, dsn = return_path.sender_for(row.id), DsnRequest(envid=row.id, notify=return_path.notify)
    try:
        result = await relay.send(sender=sender, recipients=recipients, message=row.raw, dsn=dsn)
    except NoReplyAfterData as exc:
        # RFC 1047: the relay read the whole message and may have queued it. Saying "retry" would
        # risk a second delivery; saying "failed" might be a lie. The row and the answer say "unknown".
        await store_failure(log, row, code=OUTCOME_UNKNOWN, reason=str(exc))
        raise RelayOutcomeUnknown(details={"messageId": row.id, "reason": str(exc)}) from None
    except RelayTemporaryFailure as exc:
        await store_failure(log, row, code="relay_unavailable", reason=str(exc))
        raise RelayUnavailable(details={"messageId": row.id, "reason": str(exc)}) from None
    except Exception:
        # Not the relay's answer but our own failure: the relay did not take the message either.
        await store_failure(log, row, code="internal_error", reason="internal error while relaying")
        raise
    await record_result(log, row=row, result=result)
    if not result.accepted:
        raise RelayRejected(
            details={
                "messageId": row.id,
                "response": result.response,
                "rejectedRecipients": row.rejected_recipients,
            },
        )
    return row


async def record_result(log: SendLog, *, row: SendLogRow, result: RelayResult) -> None:
    """`sent` if anyone got it, else `bounced`; each recipient refused with a 5xx is suppressed.

    Events: `sent` for the message, and `bounced` for each recipient the relay refused (or one for
    the message, when the relay refused it as a whole)."""
    now = utcnow()
    rejected = [dict(email=email, code=code, message=text) for email, (code, text) in result.rejected.items()]
    events = [_event(row, "sent", at=now)] if result.accepted else []
    events += [
        _event(row, "bounced", at=now, recipient=email, code=code, text=text)
        for email, (code, text) in result.rejected.items()
    ]
    if not events:  # refused as a whole (5xx to MAIL FROM or DATA)
        code, _, text = result.response.partition(" ")
        events.append(_event(row, "bounced", at=now, code=int(code) if code.isdigit() else 550, text=text))
    values = dict(
        status="sent" if result.accepted else "bounced",
        relay_response=result.response,
        rejected_recipients=rejected,
        sent_at=now if result.accepted else None,
        error_code=None if result.accepted else "relay_rejected",
        error_message=None if result.accepted else f"The relay refused the message: {result.response}",
        updated_at=now,
        last_event=events[-1].type,
    )
    bounced = [email for email, (code, text) in result.rejected.items() if is_hard_bounce(code, text)]
    if bounced:  # the row, its events and its bounce suppressions change together
        note = f"rejected by the relay for {row.id}"
        await record_durably(
            lambda: log.record_bounces(row.id, values, org_id=row.org_id, emails=bounced, note=note, events=events)
        )
    else:
        await record_durably(lambda: log.update(row.id, values, events=events))
    _apply(row, values)


def is_hard_bounce(code: int, text: str) -> bool:
    """A 5xx refusal of the address itself. Enhanced status 5.7.x is about policy ("relay access
    denied", "authentication required"): that is our relay set-up, not the recipient's address, and
    suppressing for it would silence every recipient of a misconfigured relay."""
    return code >= 500 and not text.lstrip().startswith("5.7.")


async def store_failure(log: SendLog, row: SendLogRow, *, code: str, reason: str) -> None:
    now = utcnow()
    values = dict(status="failed", error_code=code, error_message=reason, updated_at=now, last_event="failed")
    events = [failed_event(row.id, row.org_id, code=code, reason=reason, at=now)]
    await record_durably(lambda: log.update(row.id, values, events=events))
    _apply(row, values)


def failed_event(row_id: str, org_id: str, *, code: str, reason: str, at: datetime | None = None) -> EventRow:
    """The `failed` event of a row: the relay did not take the message, or may have (`code` says)."""
    return EventRow(
        id=new_id("evt"),
        org_id=org_id,
        message_id=row_id,
        type="failed",
        diagnostic=f"{code}: {reason}",
        created_at=at or utcnow(),
    )


def _event(
    row: SendLogRow,
    kind: str,
    *,
    at: datetime,
    recipient: str | None = None,
    code: int | None = None,
    text: str = "",
) -> EventRow:
    """An event of the row; a relay's refusal (`code`, `text`) gives its bounce type and status."""
    if code is not None:
        enhanced = _ENHANCED_STATUS.match(text)
        return EventRow(
            id=new_id("evt"),
            org_id=row.org_id,
            message_id=row.id,
            type=kind,
            recipient=recipient,
            bounce_type="hard" if is_hard_bounce(code, text) else "soft",
            smtp_status=enhanced[1] if enhanced else f"{code // 100}.0.0",
            diagnostic=f"{code} {text}".strip(),
            created_at=at,
        )
    return EventRow(id=new_id("evt"), org_id=row.org_id, message_id=row.id, type=kind, created_at=at)


_ENHANCED_STATUS = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")  # RFC 3463, at the start of the text


def envelope_recipients(row: SendLogRow) -> list[str]:
    """The envelope recipients of a stored row: To, Cc and Bcc, minus the suppressed ones."""
    everyone = [addr for _name, addr in getaddresses([*row.to, *row.cc, *row.bcc])]
    suppressed = set(row.suppressed_recipients)
    return [email for email in dict.fromkeys(everyone) if email not in suppressed]


async def record_durably(write: Callable[[], Awaitable[T]]) -> T:
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
                _unrecorded_log.warning("cannot record a relay outcome yet (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    task = asyncio.ensure_future(keep_trying())
    _pending_records.add(task)
    task.add_done_callback(_pending_records.discard)
    return await asyncio.shield(task)


_pending_records: set[asyncio.Future] = set()
_unrecorded_log = ThrottledLog(logger)  # every send in flight retries during an outage


def _apply(row: SendLogRow, values: dict) -> None:
    for name, value in values.items():
        setattr(row, name, value)


@functools.lru_cache(maxsize=4096)  # a sender's From is the same on every send
def _bare(formatted: str) -> str:
    return getaddresses([formatted])[0][1]
