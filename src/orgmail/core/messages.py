"""The send log as readers see it: one message by id, or a newest-first page filtered by status or
recipient, each as a `MessageView` (the value routes and the CLI get; rows never leave core)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import parse_email
from orgmail.core.pages import Page, newest_first
from orgmail.core.views import copied
from orgmail.db.sendlog import SendLogRow
from orgmail.db.tables import Message
from orgmail.errors import NotFound


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message of the send log, as any reader may see it (no signed bytes, no request hash)."""

    id: str
    org_id: str
    from_address: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: list[str]
    subject: str
    status: str
    message_id: str
    domain: str
    dkim_selector: str | None
    suppressed_recipients: list[str]
    rejected_recipients: list[dict[str, Any]]
    tags: dict[str, str]
    size_bytes: int
    relay_response: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    sent_at: datetime | None
    last_event: str | None
    source: str

    @classmethod
    def of(cls, row: Message | SendLogRow | Mapping[str, Any]) -> MessageView:
        """The view of an ORM row (reads), a send log row (the send path) or a mapping of these
        columns (the webhook dispatcher): copied by name."""
        return copied(cls, row)


async def get_message(session: AsyncSession, *, org_id: str, message_id: str) -> MessageView:
    message = await session.scalar(select(Message).where(Message.org_id == org_id, Message.id == message_id))
    if message is None:
        raise NotFound("No such message.")
    return MessageView.of(message)


async def list_messages(
    session: AsyncSession,
    *,
    org_id: str,
    status: str | None = None,
    recipient: str | None = None,
    event: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[MessageView]:
    query = select(Message).where(Message.org_id == org_id)
    if status is not None:
        query = query.where(Message.status == status)
    if recipient is not None:
        query = query.where(_has_recipient(parse_email(recipient, field="recipient").email))
    if event is not None:
        query = query.where(Message.last_event == event)
    page = await newest_first(session, query, Message.id, limit=limit, cursor=cursor)
    return Page([MessageView.of(row) for row in page.items], page.next_cursor)


def _has_recipient(email: str):
    """To, Cc or Bcc holds `email`, bare or as `Name <email>`.

    The lists are JSON text on both databases, written by `json.dumps`, so the address is searched
    for as json.dumps spells it, between the delimiters that end a list item.
    """
    spelled = json.dumps(email)[1:-1]
    patterns = (f'"{spelled}"', f'<{spelled}>"')
    columns = (Message.to, Message.cc, Message.bcc)
    return or_(*(cast(column, Text).contains(pattern, autoescape=True) for column in columns for pattern in patterns))
