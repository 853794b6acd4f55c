"""/v1/mail/domains/*"""

from __future__ import annotations

from fastapi import APIRouter

from orgmail.api.deps import Caller, DbSession, DnsResolver, Vault, org_scope
from orgmail.api.responses import errors
from orgmail.api.schemas import (
    ByIdInput,
    DnsCheck,
    DnsRecord,
    Domain,
    DomainAddInput,
    DomainList,
    DomainVerified,
    DomainWithRecords,
    ListInput,
    Ok,
)
from orgmail.core import domains

router = APIRouter(prefix="/v1/mail/domains", tags=["domains"])


def _with_records(view: domains.DomainView) -> DomainWithRecords:
    return DomainWithRecords(
        domain=Domain.model_validate(view), records=[DnsRecord.model_validate(r) for r in view.records]
    )


@router.post("/add", responses=errors(403, 404, 409))
async def add(body: DomainAddInput, caller: Caller, session: DbSession, vault: Vault) -> DomainWithRecords:
    """Add a domain with fresh DKIM keys; the answer lists the DNS records to publish before `verify`."""
    org_id = await org_scope(session, caller, body.org_id)
    domain = await domains.add_domain(session, org_id=org_id, name=body.name, vault=vault)
    return _with_records(await domains.get_domain(session, org_id=org_id, domain_id=domain.id))


@router.post("/get", responses=errors(403, 404))
async def get(body: ByIdInput, caller: Caller, session: DbSession) -> DomainWithRecords:
    org_id = await org_scope(session, caller, body.org_id)
    return _with_records(await domains.get_domain(session, org_id=org_id, domain_id=body.id))


@router.post("/list", responses=errors(403, 404))
async def list_(caller: Caller, session: DbSession, body: ListInput | None = None) -> DomainList:
    body = body or ListInput()
    org_id = await org_scope(session, caller, body.org_id)
    page = await domains.list_domains(session, org_id=org_id, limit=body.limit, cursor=body.cursor)
    return DomainList(domains=[Domain.model_validate(d) for d in page.items], next_cursor=page.next_cursor)


@router.post("/verify", responses=errors(403, 404, 503))
async def verify(body: ByIdInput, caller: Caller, session: DbSession, resolver: DnsResolver) -> DomainVerified:
    """Look the required records up in DNS now; verified once every check is ok. A domain that was
    verified stays verified if a later check fails. DNS that cannot answer is 503 `dns_unavailable`."""
    org_id = await org_scope(session, caller, body.org_id)
    result = await domains.verify_domain(session, org_id=org_id, domain_id=body.id, resolver=resolver)
    return DomainVerified(
        domain=Domain.model_validate(result.domain), checks=[DnsCheck.model_validate(c) for c in result.checks]
    )


@router.post("/delete", responses=errors(403, 404, 409))
async def delete(body: ByIdInput, caller: Caller, session: DbSession) -> Ok:
    """Delete the domain and its DKIM keys; 409 `domain_in_use` while mailboxes live on it."""
    org_id = await org_scope(session, caller, body.org_id)
    await domains.delete_domain(session, org_id=org_id, domain_id=body.id)
    return Ok()
