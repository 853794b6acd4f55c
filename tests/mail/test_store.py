"""The Maildir store: provisioning owned by the mail user, the trash, the purge, and the path checks
that keep it inside the data folder."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from orgmail.app import create_app
from orgmail.mail.store import MaildirStore
from tests.conftest import add_domain_row, make_tenant

ADDRESS = "someone@example.org"


def _store(tmp_path: Path, *, retention: timedelta = timedelta(days=7), owner=None) -> MaildirStore:
    return MaildirStore(tmp_path / "mail", trash_root=tmp_path / "mail-trash", retention=retention, owner=owner)


def test_provision_makes_a_private_maildir_owned_by_the_mail_user(tmp_path):
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    maildir = _store(tmp_path, owner=owner).provision("mbx_1")
    for path in (maildir.parent, maildir, maildir / "cur", maildir / "new", maildir / "tmp"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == owner
        assert info.st_mode & 0o777 == 0o700


def test_retire_moves_the_home_to_the_trash_and_purge_waits_for_the_retention(tmp_path):
    store = _store(tmp_path, retention=timedelta(days=7))
    maildir = store.provision("mbx_1")
    (maildir / "new" / "1.eml").write_bytes(b"Subject: kept\r\n\r\n")
    store.retire("mbx_1", address=ADDRESS)

    assert not (tmp_path / "mail" / "mbx_1").exists()
    entry = store.trashed()["mbx_1"]
    assert (entry / "Maildir" / "new" / "1.eml").read_bytes() == b"Subject: kept\r\n\r\n"

    now = datetime.now(UTC)
    assert store.purge(now=now + timedelta(days=6)) == [] and entry.exists()
    assert store.purge(now=now + timedelta(days=7, seconds=1)) == ["mbx_1"]
    assert not entry.exists() and store.trashed() == {}


def test_zero_retention_purges_at_once(tmp_path):
    store = _store(tmp_path, retention=timedelta(0))
    store.provision("mbx_1")
    store.retire("mbx_1", address=ADDRESS)
    assert not (tmp_path / "mail" / "mbx_1").exists()
    assert store.trashed() == {} and list((tmp_path / "mail-trash").iterdir()) == []


def test_retire_disconnects_sessions_before_moving(tmp_path):
    seen = []

    class Sessions:
        def disconnect(self, address):
            seen.append((address, (tmp_path / "mail" / "mbx_1").exists()))

    store = MaildirStore(
        tmp_path / "mail", trash_root=tmp_path / "mail-trash", retention=timedelta(days=1), sessions=Sessions()
    )
    store.provision("mbx_1")
    store.retire("mbx_1", address=ADDRESS)
    assert seen == [(ADDRESS, True)]


def test_purge_leaves_foreign_entries_alone_and_never_follows_symlinks(tmp_path):
    store = _store(tmp_path, retention=timedelta(0))
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    trash = tmp_path / "mail-trash"
    trash.mkdir()
    (trash / "20000101T000000Z.mbx_link").symlink_to(outside, target_is_directory=True)
    (trash / "notes").mkdir()

    assert store.purge() == ["mbx_link"]
    assert (outside / "keep.txt").read_text() == "mine"
    assert not (trash / "20000101T000000Z.mbx_link").exists()
    assert (trash / "notes").is_dir()


@pytest.mark.parametrize("mailbox_id", ["../escape", "a/b", ".", ""])
def test_ids_that_escape_the_mail_root_are_refused(tmp_path, mailbox_id):
    store = _store(tmp_path)
    with pytest.raises(ValueError):
        store.provision(mailbox_id)
    with pytest.raises(ValueError):
        store.retire(mailbox_id, address=ADDRESS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_home_symlinked_outside_is_refused(tmp_path):
    store = _store(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "mbx_1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        store.retire("mbx_1", address=ADDRESS)
    assert outside.is_dir()


def test_trash_and_mail_root_must_not_nest(tmp_path):
    with pytest.raises(ValueError):
        MaildirStore(tmp_path / "mail", trash_root=tmp_path / "mail" / "trash", retention=timedelta(days=1))


async def test_the_server_purges_the_trash_by_itself(settings):
    fast = dataclasses.replace(settings, purge_interval_seconds=0.05, mailbox_retention_days=3 / 86400)
    application = create_app(fast)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://orgmail.test") as http:
            tenant = await make_tenant(application, http, "Purgers")
            domain = await add_domain_row(application, tenant.org_id, verified=True)
            created = await tenant.ok("/v1/mail/mailboxes/create", {"address": f"gone@{domain}"})
            mailbox_id = created["mailbox"]["id"]
            await tenant.ok("/v1/mail/mailboxes/delete", {"id": mailbox_id})
        store = application.state.store
        assert mailbox_id in store.trashed()  # the retention (3 s) has not passed yet
        deadline = time.monotonic() + 10
        while mailbox_id in store.trashed() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert mailbox_id not in store.trashed()
