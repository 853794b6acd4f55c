"""The suppression list: addresses an org will not send to (by hand, or after a hard bounce).

Addresses are stored and matched lower-cased whole: receivers treat local parts case-insensitively
in practice, so `Foo@x` unsubscribing must also stop mail to `foo@x` (SES and Postmark agree).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import parse_email
from orgmail.core.pages import Page, newest_first
from orgmail.core.webhooks import SUPPRESSION_CREATED, queue_event, suppression_event_id
from orgmail.db.sendlog import suppression_rows, suppressions_insert
from orgmail.db.session import affected_rows
from orgmail.db.tables import Suppression
from orgmail.errors import NotFound


async def add_suppression(
    session: AsyncSession, *, org_id: str, email: str, reason: str = "manual", note: str | None = None
) -> Suppression:
    """Idempotent: suppressing an address twice keeps the first entry (its reason and note).
    A new entry is queued as `suppression.created` for the org's webhooks that want it, atomically."""
    address = parse_email(email).email.lower()
    async with session.begin():
        added = await insert_suppressions(session, org_id=org_id, emails=[address], reason=reason, note=note)
        row = await session.scalar(
            select(Suppression).where(Suppression.org_id == org_id, Suppression.email == address)
        )
        assert row is not None  # inserted or kept just above, in this transaction
        if added:
            await queue_event(
                session,
                org_id=org_id,
                event_id=suppression_event_id(row.id),
                event_type=SUPPRESSION_CREATED,
                created_at=row.created_at,
            )
        return row


async def insert_suppressions(
    session: AsyncSession, *, org_id: str, emails: Iterable[str], reason: str, note: str | None = None
) -> int:
    """Insert-or-ignore, safe under concurrent requests that suppress the same address; how many were new."""
    rows = suppression_rows(org_id, emails, reason=reason, note=note)
    if not rows:
        return 0
    return affected_rows(await session.execute(suppressions_insert(session.get_bind().dialect.name, rows)))


async def list_suppressions(
    session: AsyncSession, *, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[Suppression]:
    query = select(Suppression).where(Suppression.org_id == org_id)
    return await newest_first(session, query, Suppression.id, limit=limit, cursor=cursor)


async def remove_suppression(session: AsyncSession, *, org_id: str, email: str) -> None:
    address = parse_email(email).email.lower()
    async with session.begin():
        result = await session.execute(
            delete(Suppression).where(Suppression.org_id == org_id, Suppression.email == address)
        )
        if affected_rows(result) == 0:
            raise NotFound("That address is not on the suppression list.")
