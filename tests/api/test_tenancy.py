"""Tenants never see each other's data: another org's ids are 404, another orgId is 403."""

from __future__ import annotations

import pytest


async def test_other_org_gets_404_on_every_mailbox_call(tenant, other_tenant, verified_domain):
    await tenant.ok("/v1/mail/members/add", {"userId": "shared-user"})
    await other_tenant.ok("/v1/mail/members/add", {"userId": "shared-user"})
    mailbox = (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"x@{verified_domain}"}))["mailbox"]

    for path, body in [
        ("/v1/mail/mailboxes/get", {"id": mailbox["id"]}),
        ("/v1/mail/mailboxes/assign", {"id": mailbox["id"], "assignedUserId": "shared-user"}),
        ("/v1/mail/mailboxes/delete", {"id": mailbox["id"]}),
    ]:
        response = await other_tenant.call(path, body)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"

    listed = await other_tenant.ok("/v1/mail/mailboxes/list")
    assert mailbox["id"] not in [m["id"] for m in listed["mailboxes"]]
    still_there = await tenant.ok("/v1/mail/mailboxes/get", {"id": mailbox["id"]})
    assert still_there["mailbox"]["assignedUserId"] is None


async def test_other_org_cannot_use_our_domain(tenant, other_tenant, verified_domain):
    response = await other_tenant.call("/v1/mail/mailboxes/create", {"address": f"y@{verified_domain}"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "domain_not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/mail/mailboxes/list",
        "/v1/mail/suppressions/list",
        "/v1/mail/members/list",
    ],
)
async def test_naming_another_org_is_forbidden(tenant, other_tenant, path):
    response = await tenant.call(path, {"orgId": other_tenant.org_id})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden_org"
    own = await tenant.call(path, {"orgId": tenant.org_id})
    assert own.status_code == 200


async def test_other_org_cannot_see_or_remove_our_suppressions(tenant, other_tenant):
    await tenant.ok("/v1/mail/suppressions/add", {"email": "private@corp.example"})
    theirs = await other_tenant.ok("/v1/mail/suppressions/list")
    assert all(s["email"] != "private@corp.example" for s in theirs["suppressions"])
    removal = await other_tenant.call("/v1/mail/suppressions/remove", {"email": "private@corp.example"})
    assert removal.status_code == 404
    ours = await tenant.ok("/v1/mail/suppressions/list")
    assert [s["email"] for s in ours["suppressions"]] == ["private@corp.example"]


async def test_other_org_cannot_remove_our_members(tenant, other_tenant):
    await tenant.ok("/v1/mail/members/add", {"userId": "only-ours"})
    response = await other_tenant.call("/v1/mail/members/remove", {"userId": "only-ours"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "member_not_found"
    ours = await tenant.ok("/v1/mail/members/list")
    assert [m["userId"] for m in ours["members"]] == ["only-ours"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/mail/mailboxes/create", {"address": "a@example.com"}),
        ("/v1/mail/mailboxes/get", {"id": "mbx_01M89EDYVS9VQY0AF1HHJHFZR6"}),
        ("/v1/mail/mailboxes/assign", {"id": "mbx_01M89EDYVS9VQY0AF1HHJHFZR6", "assignedUserId": None}),
        ("/v1/mail/mailboxes/delete", {"id": "mbx_01M89EDYVS9VQY0AF1HHJHFZR6"}),
        ("/v1/mail/suppressions/add", {"email": "a@example.com"}),
        ("/v1/mail/suppressions/remove", {"email": "a@example.com"}),
        ("/v1/mail/members/add", {"userId": "u"}),
        ("/v1/mail/members/remove", {"userId": "u"}),
        ("/v1/mail/domains/add", {"name": "example.com"}),
        ("/v1/mail/domains/list", {}),
    ],
)
async def test_every_call_naming_another_org_is_forbidden(tenant, other_tenant, path, body):
    response = await tenant.call(path, {**body, "orgId": other_tenant.org_id})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden_org"
