"""The suppression list: addresses an org will not send to (by hand, or after a hard bounce).

Addresses are stored and matched lower-cased whole: receivers treat local parts case-insensitively
in practice, so `Foo@x` unsubscribing must also stop mail to `foo@x` (SES and Postmark agree).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import parse_email
from orgmail.core.pages import Page, newest_first
from orgmail.db.sendlog import add_suppressions
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
        await add_suppressions(await session.connection(), org_id=org_id, emails=[address], reason=reason, note=note)
        row = await session.scalar(
            select(Suppression).where(Suppression.org_id == org_id, Suppression.email == address)
        )
        assert row is not None  # inserted or kept just above, in this transaction
        return row


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
