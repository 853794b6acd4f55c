"""Org members: user ids pushed by a platform's identity system (or added by hand)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import parse_email
from orgmail.core.pages import Page, newest_first
from orgmail.db.session import affected_rows
from orgmail.db.tables import Mailbox, Member, utcnow
from orgmail.errors import MemberNotFound, MemberTaken
from orgmail.ids import new_id


async def add_member(
    session: AsyncSession, *, org_id: str, user_id: str, email: str | None = None, name: str | None = None
) -> Member:
    if email is not None:
        email = parse_email(email).email
    member = Member(id=new_id("mem"), org_id=org_id, user_id=user_id, email=email, name=name)
    try:
        async with session.begin():
            session.add(member)
    except IntegrityError:
        raise MemberTaken() from None
    return member


async def list_members(
    session: AsyncSession, *, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[Member]:
    query = select(Member).where(Member.org_id == org_id)
    return await newest_first(session, query, Member.id, limit=limit, cursor=cursor)


async def require_member(session: AsyncSession, *, org_id: str, user_id: str) -> Member:
    member = await session.scalar(select(Member).where(Member.org_id == org_id, Member.user_id == user_id))
    if member is None:
        raise MemberNotFound(details={"userId": user_id})
    return member


async def remove_member(session: AsyncSession, *, org_id: str, user_id: str) -> None:
    """Removing a member also unassigns the mailboxes they held."""
    async with session.begin():
        result = await session.execute(delete(Member).where(Member.org_id == org_id, Member.user_id == user_id))
        if affected_rows(result) == 0:
            raise MemberNotFound(details={"userId": user_id})
        mailboxes = await session.scalars(
            select(Mailbox).where(Mailbox.org_id == org_id, Mailbox.assigned_user_id == user_id)
        )
        now = utcnow()
        for mailbox in mailboxes:
            mailbox.assigned_user_id = None
            mailbox.updated_at = now
