"""A message's timeline (DESIGN.md §9): the events the send pipeline and the reports wrote, oldest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.core.views import copied
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

    @classmethod
    def of(cls, row: MessageEvent | Mapping[str, Any]) -> MessageEventView:
        """The view of an ORM row or a mapping of these columns: copied by name."""
        return copied(cls, row)


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
    return [MessageEventView.of(row) for row in rows]
