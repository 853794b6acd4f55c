"""The relay stage, and what the relay's answer does to the row.

The relay's answer is the truth about the message, so it reaches the row even while the database is
briefly down (`record_durably`). Only an answer that leaves the outcome open is an exception here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from email.utils import getaddresses
from typing import TypeVar

from orgmail.db.sendlog import SendLog, SendLogRow
from orgmail.db.session import is_connection_failure
from orgmail.db.tables import utcnow
from orgmail.errors import RelayOutcomeUnknown, RelayRejected, RelayUnavailable
from orgmail.mail.relay import Relay, RelayResult, RelayTemporaryFailure
from orgmail.mail.relay import RelayOutcomeUnknown as NoReplyAfterData

logger = logging.getLogger("orgmail.sending")

T = TypeVar("T")

OUTCOME_UNKNOWN = "outcome_unknown"  # the error code of a row the relay may or may not have taken


async def relay_and_record(log: SendLog, *, row: SendLogRow, relay: Relay, recipients: list[str]) -> SendLogRow:
    """Hand the stored bytes to the relay, then write down what it said (and answer accordingly)."""
    assert row.raw is not None
    try:
        result = await relay.send(sender=_bare(row.from_address), recipients=recipients, message=row.raw)
    except NoReplyAfterData as exc:
        # RFC 1047: the relay read the whole message and may have queued it. Saying "retry" would
        # risk a second delivery; saying "failed" might be a lie. The row and the answer say "unknown".
        reason = str(exc)
        await record_durably(lambda: store_failure(log, row, code=OUTCOME_UNKNOWN, reason=reason))
        raise RelayOutcomeUnknown(details={"messageId": row.id, "reason": reason}) from None
    except RelayTemporaryFailure as exc:
        reason = str(exc)
        await record_durably(lambda: store_failure(log, row, code="relay_unavailable", reason=reason))
        raise RelayUnavailable(details={"messageId": row.id, "reason": reason}) from None
    except Exception:
        # Not the relay's answer but our own failure: the relay did not take the message either.
        await record_durably(
            lambda: store_failure(log, row, code="internal_error", reason="internal error while relaying")
        )
        raise
    await record_durably(lambda: record_result(log, row=row, result=result))
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
    _apply(row, values)


def is_hard_bounce(code: int, text: str) -> bool:
    """A 5xx refusal of the address itself. Enhanced status 5.7.x is about policy ("relay access
    denied", "authentication required"): that is our relay set-up, not the recipient's address, and
    suppressing for it would silence every recipient of a misconfigured relay."""
    return code >= 500 and not text.lstrip().startswith("5.7.")


async def store_failure(log: SendLog, row: SendLogRow, *, code: str, reason: str) -> None:
    values = dict(status="failed", error_code=code, error_message=reason, updated_at=utcnow())
    await log.update(row.id, values)
    _apply(row, values)


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
                logger.warning("cannot record a relay outcome yet (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    task = asyncio.ensure_future(keep_trying())
    _pending_records.add(task)
    task.add_done_callback(_pending_records.discard)
    return await asyncio.shield(task)


_pending_records: set[asyncio.Future] = set()


def _apply(row: SendLogRow, values: dict) -> None:
    for name, value in values.items():
        setattr(row, name, value)


@functools.lru_cache(maxsize=4096)  # a sender's From is the same on every send
def _bare(formatted: str) -> str:
    return getaddresses([formatted])[0][1]
