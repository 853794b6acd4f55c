"""A send seen before: idempotent replays, retries of failed rows, and rows a crash left `queued`.

The rule is that nothing is delivered twice on our initiative: a row the relay refused, took, or may
have taken is answered from the log; only a row the relay certainly did not take is relayed again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from orgmail.core.sending.relaying import (
    OUTCOME_UNKNOWN,
    ReturnPath,
    envelope_recipients,
    failed_event,
    relay_and_record,
)
from orgmail.core.sending.validation import Limits
from orgmail.db.sendlog import SendLog, SendLogRow
from orgmail.db.tables import utcnow
from orgmail.errors import AllRecipientsSuppressed, IdempotencyConflict, RelayOutcomeUnknown, RelayRejected
from orgmail.mail.relay import Relay


async def replay(
    log: SendLog,
    earlier: SendLogRow,
    *,
    request_hash: str,
    retry_unknown: bool,
    relay: Relay,
    limits: Limits,
    return_path: ReturnPath | None = None,
) -> SendLogRow:
    """A key seen before: the first row's outcome, relaying it again only if the relay never took it
    (or, with `retry_unknown`, if nobody knows whether it did)."""
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
        if earlier.status == "failed" and earlier.error_code == OUTCOME_UNKNOWN and not retry_unknown:
            raise RelayOutcomeUnknown(details={"messageId": earlier.id, "reason": earlier.error_message})
        if earlier.status == "failed" and await _claim_for_retry(log, earlier):
            recipients = envelope_recipients(earlier)
            return await relay_and_record(log, row=earlier, relay=relay, recipients=recipients, return_path=return_path)
        if earlier.status == "queued" and earlier.updated_at < utcnow() - _longest_relay(limits):
            # Queued for longer than any relay attempt lasts: the process relaying it stopped and no
            # start-up has settled it yet. Nobody knows whether the relay has it.
            event = failed_event(earlier.id, earlier.org_id, code=OUTCOME_UNKNOWN, reason=_CUT_OFF_REASON)
            await log.update(earlier.id, _cut_off(), if_status="queued", events=[event])
            earlier = await log.get(earlier.id) or earlier
            continue
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


async def settle_unfinished_sends(log: SendLog, *, older_than: timedelta) -> int:
    """At start: a `queued` row older than the relay timeout was cut off mid-relay (a crash, a kill).

    Whether the relay took it is unknown, so it becomes `failed` with `outcome_unknown` and is never
    relayed again on our own initiative; the caller can, with its idempotency key and `retryUnknown`.
    """
    return await log.fail_queued_before(
        utcnow() - older_than,
        _cut_off(),
        event=lambda row_id, org_id: failed_event(row_id, org_id, code=OUTCOME_UNKNOWN, reason=_CUT_OFF_REASON),
    )


_CUT_OFF_REASON = "The service stopped while relaying; the relay may or may not have the message."


def _cut_off() -> dict[str, object]:
    """A row whose relay attempt was cut off by a stop: failed, outcome unknown."""
    return {
        "status": "failed",
        "error_code": OUTCOME_UNKNOWN,
        "error_message": _CUT_OFF_REASON,
        "updated_at": utcnow(),
        "last_event": "failed",
    }


def _longest_relay(limits: Limits) -> timedelta:
    return timedelta(seconds=limits.relay_timeout_seconds + 5)
