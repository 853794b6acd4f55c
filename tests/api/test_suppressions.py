"""Suppressions: add (reason defaults to manual), list newest first, remove."""

from __future__ import annotations


async def test_add_defaults_reason_to_manual(tenant):
    created = await tenant.ok("/v1/mail/suppressions/add", {"email": "Someone@Example.COM"})
    suppression = created["suppression"]
    assert suppression["reason"] == "manual"
    assert suppression["email"] == "someone@example.com"  # stored lower-cased whole
    assert suppression["id"].startswith("sup_") and suppression["note"] is None


async def test_add_twice_keeps_the_first_entry(tenant):
    first = await tenant.ok(
        "/v1/mail/suppressions/add", {"email": "twice@example.com", "reason": "complaint", "note": "FBL"}
    )
    second = await tenant.ok("/v1/mail/suppressions/add", {"email": "twice@EXAMPLE.com", "reason": "manual"})
    assert second["suppression"] == first["suppression"]


async def test_list_newest_first_and_remove(tenant):
    for name in ("a", "b", "c"):
        await tenant.ok("/v1/mail/suppressions/add", {"email": f"{name}@example.com", "reason": "unsubscribe"})
    listed = await tenant.ok("/v1/mail/suppressions/list")
    assert [s["email"] for s in listed["suppressions"]] == ["c@example.com", "b@example.com", "a@example.com"]
    assert listed["nextCursor"] is None
    assert await tenant.ok("/v1/mail/suppressions/remove", {"email": "b@example.com"}) == {"ok": True}
    listed = await tenant.ok("/v1/mail/suppressions/list")
    assert [s["email"] for s in listed["suppressions"]] == ["c@example.com", "a@example.com"]
    missing = await tenant.call("/v1/mail/suppressions/remove", {"email": "b@example.com"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_unknown_reason_is_invalid_request(tenant):
    response = await tenant.call("/v1/mail/suppressions/add", {"email": "a@example.com", "reason": "because"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"][0]["path"] == "reason"


async def test_list_pages_with_the_cursor(tenant):
    emails = [f"p{n}@example.com" for n in range(5)]
    for email in emails:
        await tenant.ok("/v1/mail/suppressions/add", {"email": email})
    seen, cursor = [], None
    while True:
        page = await tenant.ok("/v1/mail/suppressions/list", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += [s["email"] for s in page["suppressions"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == emails[::-1]


async def test_matching_is_case_insensitive(app, tenant):
    await tenant.ok("/v1/mail/suppressions/add", {"email": "Mixed.Case@Example.com", "reason": "unsubscribe"})
    found = await app.state.send_log.suppressed_among(
        org_id=tenant.org_id, emails=["mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM", "other@example.com"]
    )
    assert found == {"mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM"}
    assert await tenant.ok("/v1/mail/suppressions/remove", {"email": "MIXED.case@example.com"}) == {"ok": True}
