"""A `messages` row as a send leaves it, for tests that need a message to hang events on, and one as
a send begins it (the send log's `SendLogRow`, `queued`)."""

from __future__ import annotations

from typing import Any

from orgmail.db.sendlog import SendLogRow
from orgmail.db.tables import Message, utcnow
from orgmail.ids import new_id


def sent_message(message_id: str, org_id: str, **columns: Any) -> Message:
    now = utcnow()
    values: dict[str, Any] = dict(
        id=message_id,
        org_id=org_id,
        from_address="ann@example.com",
        to=["bob@example.net"],
        subject="Hello",
        status="sent",
        message_id=f"<{message_id}@example.com>",
        domain="example.com",
        created_at=now,
        updated_at=now,
        sent_at=now,
        last_event="sent",
    )
    return Message(**(values | columns))


def queued_row(org_id: str, *, key: str | None = None, row_id: str | None = None) -> SendLogRow:
    now = utcnow()
    row_id = row_id or new_id("msg")
    return SendLogRow(
        id=row_id,
        org_id=org_id,
        from_address="Ann <ann@example.com>",
        to=["bob@example.net"],
        cc=[],
        bcc=[],
        reply_to=[],
        subject="Hello",
        status="queued",
        message_id=f"<{row_id}@example.com>",
        domain="example.com",
        dkim_selector="sel",
        suppressed_recipients=[],
        rejected_recipients=[],
        tags={"k": "v"},
        size_bytes=3,
        relay_response=None,
        error_code=None,
        error_message=None,
        idempotency_key=key,
        request_hash="h",
        raw=b"raw",
        created_at=now,
        updated_at=now,
        sent_at=None,
    )
