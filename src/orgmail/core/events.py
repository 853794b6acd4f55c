"""A message's timeline (DESIGN.md §9): the events the send pipeline and the reports wrote, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.db.tables import Message, MessageEvent
from orgmail.errors import NotFound


@dataclass(frozen=True, slots=True)
class MessageEventView:
    id: str
    org_id: str
    message_id: str
    type: str
    recipient: str | None
    bounce_type: str | None
    smtp_status: str | None
    diagnostic: str | None
    created_at: datetime


async def list_events(session: AsyncSession, *, org_id: str, message_id: str) -> list[MessageEventView]:
    """Every event of the org's message, oldest first; another org's message is 404."""
    owner = await session.scalar(select(Message.org_id).where(Message.id == message_id, Message.org_id == org_id))
    if owner is None:
        raise NotFound("No such message.")
    rows = await session.scalars(
        select(MessageEvent)
        .where(MessageEvent.message_id == message_id, MessageEvent.org_id == org_id)
        .order_by(MessageEvent.id)
    )
    return [
        MessageEventView(
            id=row.id,
            org_id=row.org_id,
            message_id=row.message_id,
            type=row.type,
            recipient=row.recipient,
            bounce_type=row.bounce_type,
            smtp_status=row.smtp_status,
            diagnostic=row.diagnostic,
            created_at=row.created_at,
        )
        for row in rows
    ]
