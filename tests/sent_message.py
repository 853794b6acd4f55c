"""A `messages` row as a send leaves it, for tests that need a message to hang events on."""

from __future__ import annotations

from typing import Any

from orgmail.db.tables import Message, utcnow


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
