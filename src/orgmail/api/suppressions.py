"""/v1/mail/suppressions/*"""

from __future__ import annotations

from fastapi import APIRouter

from orgmail.api.deps import Caller, DbSession, org_scope
from orgmail.api.responses import errors
from orgmail.api.schemas import (
    ListInput,
    Ok,
    Suppression,
    SuppressionAddInput,
    SuppressionList,
    SuppressionOut,
    SuppressionRemoveInput,
)
from orgmail.core import suppressions

router = APIRouter(prefix="/v1/mail/suppressions", tags=["suppressions"])


@router.post("/add", responses=errors(403, 404))
async def add(body: SuppressionAddInput, caller: Caller, session: DbSession) -> SuppressionOut:
    """Suppress an address (reason defaults to `manual`); adding it again keeps the first entry."""
    org_id = await org_scope(session, caller, body.org_id)
    row = await suppressions.add_suppression(
        session, org_id=org_id, email=body.email, reason=body.reason, note=body.note
    )
    return SuppressionOut(suppression=Suppression.model_validate(row))


@router.post("/list", responses=errors(403, 404))
async def list_(caller: Caller, session: DbSession, body: ListInput | None = None) -> SuppressionList:
    body = body or ListInput()
    org_id = await org_scope(session, caller, body.org_id)
    page = await suppressions.list_suppressions(session, org_id=org_id, limit=body.limit, cursor=body.cursor)
    return SuppressionList(
        suppressions=[Suppression.model_validate(s) for s in page.items], next_cursor=page.next_cursor
    )


@router.post("/remove", responses=errors(403, 404))
async def remove(body: SuppressionRemoveInput, caller: Caller, session: DbSession) -> Ok:
    org_id = await org_scope(session, caller, body.org_id)
    await suppressions.remove_suppression(session, org_id=org_id, email=body.email)
    return Ok()
