"""Reading the send log: one message by id, or a newest-first page filtered by status or recipient."""

from __future__ import annotations

import json

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import parse_email
from orgmail.core.pages import Page, newest_first
from orgmail.db.tables import Message
from orgmail.errors import NotFound


async def get_message(session: AsyncSession, *, org_id: str, message_id: str) -> Message:
    message = await session.scalar(select(Message).where(Message.org_id == org_id, Message.id == message_id))
    if message is None:
        raise NotFound("No such message.")
    return message


async def list_messages(
    session: AsyncSession,
    *,
    org_id: str,
    status: str | None = None,
    recipient: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Message]:
    query = select(Message).where(Message.org_id == org_id)
    if status is not None:
        query = query.where(Message.status == status)
    if recipient is not None:
        query = query.where(_has_recipient(parse_email(recipient, field="recipient").email))
    return await newest_first(session, query, Message.id, limit=limit, cursor=cursor)


def _has_recipient(email: str):
    """To, Cc or Bcc holds `email`, bare or as `Name <email>`.

    The lists are JSON text on both databases, written by `json.dumps`, so the address is searched
    for as json.dumps spells it, between the delimiters that end a list item.
    """
    spelled = json.dumps(email)[1:-1]
    patterns = (f'"{spelled}"', f'<{spelled}>"')
    columns = (Message.to, Message.cc, Message.bcc)
    return or_(*(cast(column, Text).contains(pattern, autoescape=True) for column in columns for pattern in patterns))
