"""/v1/mail/mailboxes/*"""

from __future__ import annotations

from fastapi import APIRouter, Request

from orgmail.api.deps import AppSettings, Caller, DbSession, Store, org_scope
from orgmail.api.responses import errors
from orgmail.api.schemas import (
    ByIdInput,
    ClientSettings,
    ListInput,
    Mailbox,
    MailboxAssignInput,
    MailboxCreated,
    MailboxCreateInput,
    MailboxList,
    MailboxOut,
    Ok,
)
from orgmail.core import client_settings, mailboxes

router = APIRouter(prefix="/v1/mail/mailboxes", tags=["mailboxes"])


@router.post("/create", responses=errors(403, 404, 409))
async def create(body: MailboxCreateInput, caller: Caller, session: DbSession, store: Store) -> MailboxCreated:
    """Create a mailbox on a verified domain. The password is in this answer and nowhere else, ever."""
    org_id = await org_scope(session, caller, body.org_id)
    mailbox, password = await mailboxes.create_mailbox(
        session,
        org_id=org_id,
        store=store,
        address=body.address,
        display_name=body.display_name,
        assigned_user_id=body.assigned_user_id,
        quota_mb=body.quota_mb,
    )
    return MailboxCreated(mailbox=Mailbox.model_validate(mailbox), password=password)


@router.post("/get", responses=errors(403, 404))
async def get(body: ByIdInput, caller: Caller, session: DbSession) -> MailboxOut:
    org_id = await org_scope(session, caller, body.org_id)
    mailbox = await mailboxes.get_mailbox(session, org_id=org_id, mailbox_id=body.id)
    return MailboxOut(mailbox=Mailbox.model_validate(mailbox))


@router.post("/list", responses=errors(403, 404))
async def list_(caller: Caller, session: DbSession, body: ListInput | None = None) -> MailboxList:
    body = body or ListInput()
    org_id = await org_scope(session, caller, body.org_id)
    page = await mailboxes.list_mailboxes(session, org_id=org_id, limit=body.limit, cursor=body.cursor)
    return MailboxList(mailboxes=[Mailbox.model_validate(m) for m in page.items], next_cursor=page.next_cursor)


@router.post("/assign", responses=errors(403, 404))
async def assign(body: MailboxAssignInput, caller: Caller, session: DbSession) -> MailboxOut:
    """Assign to an org member, or unassign with `assignedUserId: null`."""
    org_id = await org_scope(session, caller, body.org_id)
    mailbox = await mailboxes.assign_mailbox(
        session, org_id=org_id, mailbox_id=body.id, assigned_user_id=body.assigned_user_id
    )
    return MailboxOut(mailbox=Mailbox.model_validate(mailbox))


@router.post("/delete", responses=errors(403, 404))
async def delete(body: ByIdInput, caller: Caller, session: DbSession, store: Store) -> Ok:
    """Delete the mailbox and its mail-store entry."""
    org_id = await org_scope(session, caller, body.org_id)
    await mailboxes.delete_mailbox(session, org_id=org_id, mailbox_id=body.id, store=store)
    return Ok()


@router.post("/clientSettings", responses=errors(403, 404))
async def client_settings_(
    body: ByIdInput, caller: Caller, session: DbSession, settings: AppSettings, request: Request
) -> ClientSettings:
    """The IMAP and submission servers, username and autoconfig URL a member's mail client needs."""
    org_id = await org_scope(session, caller, body.org_id)
    mailbox = await mailboxes.get_mailbox(session, org_id=org_id, mailbox_id=body.id)
    found = client_settings.client_settings(
        settings, address=mailbox.address, request_host=request.url.hostname or "", base_url=str(request.base_url)
    )
    return ClientSettings.model_validate(found)
