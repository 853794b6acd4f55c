"""Members: add, list, remove; removing a member unassigns their mailboxes."""

from __future__ import annotations


async def test_add_list_remove(tenant):
    added = await tenant.ok("/v1/mail/members/add", {"userId": "u-1", "email": "one@corp.example", "name": "One"})
    assert added["member"] == {
        "userId": "u-1",
        "orgId": tenant.org_id,
        "email": "one@corp.example",
        "name": "One",
        "createdAt": added["member"]["createdAt"],
    }
    await tenant.ok("/v1/mail/members/add", {"userId": "u-2"})
    listed = await tenant.ok("/v1/mail/members/list")
    assert [m["userId"] for m in listed["members"]] == ["u-2", "u-1"]
    duplicate = await tenant.call("/v1/mail/members/add", {"userId": "u-1"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "member_taken"
    assert await tenant.ok("/v1/mail/members/remove", {"userId": "u-1"}) == {"ok": True}
    missing = await tenant.call("/v1/mail/members/remove", {"userId": "u-1"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"


async def test_removing_a_member_unassigns_their_mailboxes(tenant, verified_domain):
    await tenant.ok("/v1/mail/members/add", {"userId": "leaver"})
    mailbox = (
        await tenant.ok("/v1/mail/mailboxes/create", {"address": f"l@{verified_domain}", "assignedUserId": "leaver"})
    )["mailbox"]
    assert mailbox["assignedUserId"] == "leaver"
    await tenant.ok("/v1/mail/members/remove", {"userId": "leaver"})
    after = await tenant.ok("/v1/mail/mailboxes/get", {"id": mailbox["id"]})
    assert after["mailbox"]["assignedUserId"] is None


async def test_list_pages_with_the_cursor(tenant):
    for n in range(3):
        await tenant.ok("/v1/mail/members/add", {"userId": f"m{n}"})
    first = await tenant.ok("/v1/mail/members/list", {"limit": 2})
    second = await tenant.ok("/v1/mail/members/list", {"limit": 2, "cursor": first["nextCursor"]})
    assert [m["userId"] for m in first["members"] + second["members"]] == ["m2", "m1", "m0"]
    assert second["nextCursor"] is None


async def test_member_email_is_validated(tenant):
    response = await tenant.call("/v1/mail/members/add", {"userId": "x", "email": "not an email"})
    assert response.status_code == 400 and response.json()["error"]["details"]["fields"][0]["path"] == "email"
