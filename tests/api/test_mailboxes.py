"""Mailboxes over HTTP: create (password once), get, list, assign, delete, and their failures."""

from __future__ import annotations

from sqlalchemy import func, select

from orgmail.db.tables import Mailbox
from orgmail.mail.passwords import verify_dovecot_hash
from tests.conftest import add_domain_row


async def test_create_returns_password_once_and_stores_only_a_dovecot_hash(tenant, verified_domain, session, settings):
    created = await tenant.ok(
        "/v1/mail/mailboxes/create",
        {"address": f"Alice@{verified_domain.upper()}", "displayName": "Alice", "quotaMb": 512},
    )
    mailbox, password = created["mailbox"], created["password"]
    assert mailbox["address"] == f"alice@{verified_domain}"
    assert mailbox["localPart"] == "alice" and mailbox["domain"] == verified_domain
    assert mailbox["id"].startswith("mbx_") and mailbox["orgId"] == tenant.org_id
    assert mailbox["quotaMb"] == 512 and mailbox["displayName"] == "Alice" and mailbox["assignedUserId"] is None
    assert len(password) >= 22

    fetched = await tenant.ok("/v1/mail/mailboxes/get", {"id": mailbox["id"]})
    assert fetched == {"mailbox": mailbox}
    assert password not in str(fetched)

    row = await session.scalar(select(Mailbox).where(Mailbox.id == mailbox["id"]))
    assert row.password_hash.startswith("{ARGON2ID}$argon2id$")
    assert password not in row.password_hash
    assert verify_dovecot_hash(row.password_hash, password)
    assert (settings.maildir_root / mailbox["id"] / "Maildir" / "new").is_dir()


async def test_create_twice_is_mailbox_taken(tenant, verified_domain):
    await tenant.ok("/v1/mail/mailboxes/create", {"address": f"bob@{verified_domain}"})
    again = await tenant.call("/v1/mail/mailboxes/create", {"address": f"BOB@{verified_domain}"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "mailbox_taken"


async def test_create_on_unknown_domain_is_400_and_on_pending_domain_403(app, tenant):
    unknown = await tenant.call("/v1/mail/mailboxes/create", {"address": "a@nowhere.example"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "domain_not_found"
    pending = await add_domain_row(app, tenant.org_id, verified=False)
    response = await tenant.call("/v1/mail/mailboxes/create", {"address": f"a@{pending}"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "domain_not_verified"


async def test_create_with_unknown_member_is_404_and_leaves_nothing(tenant, verified_domain, session, settings):
    before = set(settings.maildir_root.iterdir()) if settings.maildir_root.exists() else set()
    response = await tenant.call(
        "/v1/mail/mailboxes/create", {"address": f"c@{verified_domain}", "assignedUserId": "ghost"}
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "member_not_found"
    count = await session.scalar(
        select(func.count()).select_from(Mailbox).where(Mailbox.address == f"c@{verified_domain}")
    )
    assert count == 0
    after = set(settings.maildir_root.iterdir()) if settings.maildir_root.exists() else set()
    assert after == before


async def test_failed_provisioning_leaves_no_row(app, tenant, verified_domain, session, monkeypatch):
    def broken_provision(mailbox_id):
        raise OSError("disk full")

    monkeypatch.setattr(app.state.store, "provision", broken_provision)
    response = await tenant.call("/v1/mail/mailboxes/create", {"address": f"d@{verified_domain}"})
    assert response.status_code >= 500
    assert "disk full" not in response.text
    count = await session.scalar(
        select(func.count()).select_from(Mailbox).where(Mailbox.address == f"d@{verified_domain}")
    )
    assert count == 0


async def test_list_is_newest_first_with_cursor(tenant, verified_domain):
    ids = []
    for n in range(5):
        ids.append(
            (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"u{n}@{verified_domain}"}))["mailbox"]["id"]
        )
    first = await tenant.ok("/v1/mail/mailboxes/list", {"limit": 2})
    assert [m["id"] for m in first["mailboxes"]] == ids[::-1][:2]
    second = await tenant.ok("/v1/mail/mailboxes/list", {"limit": 2, "cursor": first["nextCursor"]})
    third = await tenant.ok("/v1/mail/mailboxes/list", {"limit": 2, "cursor": second["nextCursor"]})
    assert [m["id"] for m in second["mailboxes"] + third["mailboxes"]] == ids[::-1][2:]
    assert third["nextCursor"] is None
    everything = await tenant.ok("/v1/mail/mailboxes/list")
    assert [m["id"] for m in everything["mailboxes"]] == ids[::-1]


async def test_assign_and_unassign_to_a_member(tenant, verified_domain):
    await tenant.ok("/v1/mail/members/add", {"userId": "user_1", "email": "u1@corp.example"})
    mailbox = (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"e@{verified_domain}"}))["mailbox"]
    assigned = await tenant.ok("/v1/mail/mailboxes/assign", {"id": mailbox["id"], "assignedUserId": "user_1"})
    assert assigned["mailbox"]["assignedUserId"] == "user_1"
    unassigned = await tenant.ok("/v1/mail/mailboxes/assign", {"id": mailbox["id"], "assignedUserId": None})
    assert unassigned["mailbox"]["assignedUserId"] is None
    ghost = await tenant.call("/v1/mail/mailboxes/assign", {"id": mailbox["id"], "assignedUserId": "ghost"})
    assert ghost.status_code == 404 and ghost.json()["error"]["code"] == "member_not_found"


async def test_delete_removes_row_and_moves_maildir_to_trash(app, tenant, verified_domain, settings):
    mailbox = (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"f@{verified_domain}"}))["mailbox"]
    home = settings.maildir_root / mailbox["id"]
    assert home.is_dir()
    assert await tenant.ok("/v1/mail/mailboxes/delete", {"id": mailbox["id"]}) == {"ok": True}
    assert not home.exists()
    trashed = app.state.store.trashed()[mailbox["id"]]
    assert trashed.parent == settings.mail_trash_root and (trashed / "Maildir" / "new").is_dir()
    gone = await tenant.call("/v1/mail/mailboxes/get", {"id": mailbox["id"]})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    again = await tenant.call("/v1/mail/mailboxes/delete", {"id": mailbox["id"]})
    assert again.status_code == 404


async def test_invalid_address_is_400_with_field_path(tenant):
    response = await tenant.call("/v1/mail/mailboxes/create", {"address": "not an address"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["fields"][0]["path"] == "address"


async def test_concurrent_creates_of_one_address_make_exactly_one_mailbox(tenant, verified_domain, settings):
    import asyncio

    responses = await asyncio.gather(
        *[tenant.call("/v1/mail/mailboxes/create", {"address": f"race@{verified_domain}"}) for _ in range(6)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409, 409, 409, 409, 409]
    winner = next(r.json()["mailbox"]["id"] for r in responses if r.status_code == 200)
    homes = [p.name for p in settings.maildir_root.iterdir()]
    assert winner in homes
    listed = await tenant.ok("/v1/mail/mailboxes/list", {"limit": 200})
    assert [m["id"] for m in listed["mailboxes"] if m["address"] == f"race@{verified_domain}"] == [winner]


async def test_non_ascii_local_parts_are_refused_for_mailboxes(tenant, verified_domain):
    response = await tenant.call("/v1/mail/mailboxes/create", {"address": f"jöran@{verified_domain}"})
    assert response.status_code == 400 and response.json()["error"]["details"]["fields"][0]["path"] == "address"


async def test_a_delete_whose_move_fails_still_deletes_and_tidy_moves_the_leftover(
    app, tenant, verified_domain, session, monkeypatch
):
    from datetime import timedelta

    from orgmail.core.mailboxes import tidy_mail_store

    store = app.state.store
    mailbox = (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"stuck@{verified_domain}"}))["mailbox"]

    def broken_retire(mailbox_id, *, address):
        raise PermissionError("trash not writable")

    monkeypatch.setattr(store, "retire", broken_retire)
    assert await tenant.ok("/v1/mail/mailboxes/delete", {"id": mailbox["id"]}) == {"ok": True}
    assert (await tenant.call("/v1/mail/mailboxes/get", {"id": mailbox["id"]})).status_code == 404
    assert store.home(mailbox["id"]).is_dir()  # left behind by the failed move
    monkeypatch.undo()

    result = await tidy_mail_store(session, store=store, grace=timedelta(0))
    assert mailbox["id"] in result.orphans_retired
    assert not store.home(mailbox["id"]).exists()
    assert mailbox["id"] in store.trashed() or mailbox["id"] in result.purged
    live = (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"alive@{verified_domain}"}))["mailbox"]
    await tidy_mail_store(session, store=store, grace=timedelta(0))
    assert store.home(live["id"]).is_dir()  # a mailbox with a row is never touched
