"""/v1/mail/members/*"""

from __future__ import annotations

from fastapi import APIRouter

from orgmail.api.deps import Caller, DbSession, org_scope
from orgmail.api.responses import errors
from orgmail.api.schemas import ListInput, Member, MemberAdded, MemberAddInput, MemberList, MemberRemoveInput, Ok
from orgmail.core import members

router = APIRouter(prefix="/v1/mail/members", tags=["members"])


@router.post("/add", responses=errors(403, 404, 409))
async def add(body: MemberAddInput, caller: Caller, session: DbSession) -> MemberAdded:
    org_id = await org_scope(session, caller, body.org_id)
    member = await members.add_member(session, org_id=org_id, user_id=body.user_id, email=body.email, name=body.name)
    return MemberAdded(member=Member.model_validate(member))


@router.post("/list", responses=errors(403, 404))
async def list_(caller: Caller, session: DbSession, body: ListInput | None = None) -> MemberList:
    body = body or ListInput()
    org_id = await org_scope(session, caller, body.org_id)
    page = await members.list_members(session, org_id=org_id, limit=body.limit, cursor=body.cursor)
    return MemberList(members=[Member.model_validate(m) for m in page.items], next_cursor=page.next_cursor)


@router.post("/remove", responses=errors(403, 404))
async def remove(body: MemberRemoveInput, caller: Caller, session: DbSession) -> Ok:
    """Remove a member; mailboxes assigned to them become unassigned."""
    org_id = await org_scope(session, caller, body.org_id)
    await members.remove_member(session, org_id=org_id, user_id=body.user_id)
    return Ok()
