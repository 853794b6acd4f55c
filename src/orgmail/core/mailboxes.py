"""Mailboxes on an org's verified domains: a database row (with the Dovecot password hash) and a
Maildir in the mail store. Create and delete keep the two in step.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.addresses import parse_email
from orgmail.core.domains import require_verified_domain
from orgmail.core.members import require_member
from orgmail.core.pages import Page, newest_first
from orgmail.db import postfix_copy
from orgmail.db.tables import Mailbox, utcnow
from orgmail.errors import MailboxTaken, NotFound
from orgmail.ids import new_id
from orgmail.mail.passwords import generate_password, hash_for_dovecot
from orgmail.mail.store import MailStore

log = logging.getLogger("orgmail.mailboxes")


async def create_mailbox(
    session: AsyncSession,
    *,
    org_id: str,
    store: MailStore,
    address: str,
    display_name: str | None = None,
    assigned_user_id: str | None = None,
    quota_mb: int | None = None,
) -> tuple[Mailbox, str]:
    """Returns the mailbox and its plaintext password, which is never available again.

    All or nothing: the Maildir is made inside the transaction and removed if the commit fails.
    """
    # ASCII only: Dovecot lower-cases log-ins ('%Lu') byte-wise, which only agrees with us on ASCII.
    parsed = parse_email(address, field="address", ascii_local_part=True)
    # Dovecot looks log-ins up lower-cased ('%Lu'), so mailbox addresses are stored lower-cased whole.
    local_part, domain_name = parsed.local_part.lower(), parsed.domain
    full_address = f"{local_part}@{domain_name}"
    password = generate_password()
    password_hash = await asyncio.to_thread(hash_for_dovecot, password)
    mailbox_id = new_id("mbx")
    provisioned = False
    try:
        async with session.begin():
            domain = await require_verified_domain(session, org_id=org_id, name=domain_name)
            if assigned_user_id is not None:
                await require_member(session, org_id=org_id, user_id=assigned_user_id)
            taken = await session.scalar(select(Mailbox.id).where(Mailbox.address == full_address))
            if taken is not None:
                raise MailboxTaken(details={"address": full_address})
            now = utcnow()
            mailbox = Mailbox(
                id=mailbox_id,
                org_id=org_id,
                domain_id=domain.id,
                address=full_address,
                local_part=local_part,
                domain=domain_name,
                display_name=display_name,
                assigned_user_id=assigned_user_id,
                quota_mb=quota_mb,
                password_hash=password_hash,
                created_at=now,
                updated_at=now,
            )
            session.add(mailbox)
            await session.flush()
            await asyncio.to_thread(store.provision, mailbox_id)
            provisioned = True
    except IntegrityError:
        if provisioned:
            await asyncio.to_thread(store.discard, mailbox_id)
        # Two creates raced for one address and the unique index decided; any other violation
        # (the domain deleted meanwhile, say) is not a taken address.
        if await session.scalar(select(Mailbox.id).where(Mailbox.address == full_address)) is None:
            raise
        raise MailboxTaken(details={"address": full_address}) from None
    except BaseException:
        if provisioned:
            await asyncio.to_thread(store.discard, mailbox_id)
        raise
    await postfix_copy.refresh(session.get_bind().engine.url)  # Postfix takes mail for it from now on
    return mailbox, password


async def address_taken(session: AsyncSession, *, address: str) -> bool:
    """Mailbox addresses are unique across orgs (they are Dovecot log-ins)."""
    return await session.scalar(select(Mailbox.id).where(Mailbox.address == address.lower())) is not None


async def get_mailbox(session: AsyncSession, *, org_id: str, mailbox_id: str) -> Mailbox:
    mailbox = await session.scalar(select(Mailbox).where(Mailbox.org_id == org_id, Mailbox.id == mailbox_id))
    if mailbox is None:
        raise NotFound("No such mailbox.")
    return mailbox


async def list_mailboxes(
    session: AsyncSession, *, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[Mailbox]:
    query = select(Mailbox).where(Mailbox.org_id == org_id)
    return await newest_first(session, query, Mailbox.id, limit=limit, cursor=cursor)


async def assign_mailbox(
    session: AsyncSession, *, org_id: str, mailbox_id: str, assigned_user_id: str | None
) -> Mailbox:
    async with session.begin():
        mailbox = await get_mailbox(session, org_id=org_id, mailbox_id=mailbox_id)
        if assigned_user_id is not None:
            await require_member(session, org_id=org_id, user_id=assigned_user_id)
        mailbox.assigned_user_id = assigned_user_id
        mailbox.updated_at = utcnow()
    return mailbox


async def delete_mailbox(session: AsyncSession, *, org_id: str, mailbox_id: str, store: MailStore) -> None:
    """The row goes first: Dovecot reads accounts from the database uncached, so the account
    vanishes at once (no new log-in, no LMTP delivery). Then the store disconnects live sessions and
    moves the Maildir to the trash, where it waits for the retention before it is purged.
    """
    async with session.begin():
        mailbox = await get_mailbox(session, org_id=org_id, mailbox_id=mailbox_id)
        address = mailbox.address
        await session.delete(mailbox)
    await postfix_copy.refresh(session.get_bind().engine.url)  # and Postfix refuses it at RCPT from now on
    try:
        await asyncio.to_thread(store.retire, mailbox_id, address=address)
    except OSError as error:
        # The account is already gone, which is what the caller asked for; the home left behind is
        # moved to the trash by the next `tidy_mail_store`.
        log.warning("mailbox %s deleted, its Maildir stays until the next tidy: %s", mailbox_id, error)


@dataclass(frozen=True)
class TidyResult:
    orphans_retired: list[str]
    purged: list[str]


async def tidy_mail_store(
    session: AsyncSession, *, store: MailStore, grace: timedelta = timedelta(minutes=5)
) -> TidyResult:
    """Housekeeping across all orgs (an operator step, hence no org id): move homes whose mailbox row is
    gone (a delete that crashed between its commit and the move) to the trash, then purge the trash.
    """
    home_ids = await asyncio.to_thread(store.home_ids, older_than=grace)
    alive: set[str] = set()
    for start in range(0, len(home_ids), 500):
        chunk = home_ids[start : start + 500]
        alive |= set(await session.scalars(select(Mailbox.id).where(Mailbox.id.in_(chunk))))
    await session.rollback()
    orphans = [mailbox_id for mailbox_id in home_ids if mailbox_id not in alive]
    for mailbox_id in orphans:
        await asyncio.to_thread(store.retire, mailbox_id, address="")
    purged = await asyncio.to_thread(store.purge)
    return TidyResult(orphans_retired=orphans, purged=purged)


async def tidy_periodically(session_factory, *, store: MailStore, interval_seconds: float) -> None:
    """The server's housekeeping loop: one tidy now, then one every interval, until cancelled."""
    while True:
        try:
            async with session_factory() as session:
                await tidy_mail_store(session, store=store)
        except Exception:  # a failed tidy (database down, say) must not stop the next one
            log.exception("tidying the mail store failed")
        await asyncio.sleep(interval_seconds)
