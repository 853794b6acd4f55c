"""/v1/admin/*: orgs and API keys for a hosting platform; mounted only when ORGMAIL_ADMIN_TOKEN is set."""

from __future__ import annotations

from fastapi import APIRouter, Request

from orgmail.api.deps import Admin, DbSession
from orgmail.api.responses import errors
from orgmail.api.schemas import (
    AdminListInput,
    ApiKey,
    ApiKeyCreated,
    ApiKeyCreateInput,
    ApiKeyRevokeInput,
    Ok,
    Org,
    OrgCreated,
    OrgCreateInput,
    OrgList,
)
from orgmail.core import orgs

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/orgs/create", responses=errors())
async def create_org(body: OrgCreateInput, _admin: Admin, session: DbSession) -> OrgCreated:
    org = await orgs.create_org(session, name=body.name)
    return OrgCreated(org=Org.model_validate(org))


@router.post("/orgs/list", responses=errors())
async def list_orgs(_admin: Admin, session: DbSession, body: AdminListInput | None = None) -> OrgList:
    body = body or AdminListInput()
    page = await orgs.list_orgs(session, limit=body.limit, cursor=body.cursor)
    return OrgList(orgs=[Org.model_validate(o) for o in page.items], next_cursor=page.next_cursor)


@router.post("/keys/create", responses=errors(404))
async def create_key(body: ApiKeyCreateInput, _admin: Admin, session: DbSession) -> ApiKeyCreated:
    """The secret `key` is in this answer only; store it now."""
    api_key, secret = await orgs.create_api_key(session, org_id=body.org_id, name=body.name)
    return ApiKeyCreated(api_key=ApiKey.model_validate(api_key), key=secret)


@router.post("/keys/revoke", responses=errors(404))
async def revoke_key(body: ApiKeyRevokeInput, _admin: Admin, session: DbSession, request: Request) -> Ok:
    await orgs.revoke_api_key(session, key_id=body.id)
    request.app.state.api_key_cache.forget_all()  # this process stops accepting it now; others within the TTL
    return Ok()
