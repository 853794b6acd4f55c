"""Provisioned mailboxes are real mailboxes: a real Dovecot, started with the generated config, serves
them over IMAP and takes deliveries over LMTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import imaplib
import logging
import smtplib
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

pytestmark = pytest.mark.dovecot  # a real Dovecot: `-m "not dovecot"` leaves these out on a machine without one


def _message(subject: str, body: str = "Hello.\n", *, to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "sender@outside.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message.as_bytes()


def _deliver(dovecot, address: str, raw: bytes) -> dict:
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp_port, timeout=10) as lmtp:
        return lmtp.sendmail("sender@outside.example", [address], raw)


def _inbox_subjects(client: imaplib.IMAP4) -> list[str]:
    status, _ = client.select("INBOX")
    assert status == "OK"
    _, (ids,) = client.search(None, "ALL")
    subjects = []
    for number in ids.split():
        _, parts = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects.append(parts[0][1].decode().strip().removeprefix("Subject: "))
    return subjects


def _eventually(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def _create(tenant, address: str, **fields) -> tuple[dict, str]:
    created = await tenant.ok("/v1/mail/mailboxes/create", {"address": address, **fields})
    return created["mailbox"], created["password"]


async def test_created_mailbox_logs_in_selects_and_appends(tenant, verified_domain, dovecot, settings):
    mailbox, password = await _create(tenant, f"Ann@{verified_domain}")
    client = dovecot.login(f"ann@{verified_domain}", password)
    try:
        status, (count,) = client.select("INBOX")
        assert (status, count) == ("OK", b"0")
        status, _ = client.append("INBOX", None, None, _message("Draft one", to=mailbox["address"]))
        assert status == "OK"
        assert _inbox_subjects(client) == ["Draft one"]
    finally:
        client.logout()
    # The mail is in the mailbox's own Maildir, keyed by id.
    assert list((settings.maildir_root / mailbox["id"] / "Maildir" / "cur").iterdir())
    # Dovecot looks log-ins up lower-cased, as addresses are stored.
    dovecot.login(f"ANN@{verified_domain.upper()}", password).logout()


async def test_wrong_password_and_unknown_address_are_refused(tenant, verified_domain, dovecot):
    mailbox, password = await _create(tenant, f"bea@{verified_domain}")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot.login(mailbox["address"], password[:-1] + ("x" if password[-1] != "x" else "y"))
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot.login(f"nobody-here@{verified_domain}", password)


async def test_lmtp_delivery_lands_in_inbox(tenant, verified_domain, dovecot):
    mailbox, password = await _create(tenant, f"cat@{verified_domain}")
    assert _deliver(dovecot, mailbox["address"], _message("Delivered", to=mailbox["address"])) == {}
    client = dovecot.login(mailbox["address"], password)
    try:
        assert _inbox_subjects(client) == ["Delivered"]
        _, parts = client.fetch(b"1", "(BODY.PEEK[TEXT])")
        assert b"Hello." in parts[0][1]
    finally:
        client.logout()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _deliver(dovecot, f"nobody-here@{verified_domain}", _message("Lost", to="x@y.example"))
    assert refused.value.recipients[f"nobody-here@{verified_domain}"][0] == 550


async def test_delete_kicks_sessions_refuses_login_and_trashes_then_purges(
    app, tenant, verified_domain, dovecot, settings
):
    mailbox, password = await _create(tenant, f"dan@{verified_domain}")
    _deliver(dovecot, mailbox["address"], _message("Kept in the trash", to=mailbox["address"]))
    live = dovecot.login(mailbox["address"], password)
    assert live.select("INBOX")[0] == "OK"
    assert mailbox["address"] in dovecot.doveadm("who")

    assert await tenant.ok("/v1/mail/mailboxes/delete", {"id": mailbox["id"]}) == {"ok": True}

    # The live session was kicked (not merely left to notice its Maildir is gone on its next command).
    assert _eventually(lambda: mailbox["address"] not in dovecot.doveadm("who"))
    with pytest.raises(imaplib.IMAP4.abort):
        live.noop()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot.login(mailbox["address"], password)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _deliver(dovecot, mailbox["address"], _message("Too late", to=mailbox["address"]))

    store = app.state.store
    assert not (settings.maildir_root / mailbox["id"]).exists()
    trashed = store.trashed()[mailbox["id"]]
    assert trashed.parent == settings.mail_trash_root
    assert len(list((trashed / "Maildir" / "new").iterdir()) + list((trashed / "Maildir" / "cur").iterdir())) == 1

    assert store.purge() == [] and trashed.exists()  # inside the retention (7 days)
    later = datetime.now(UTC) + timedelta(days=settings.mailbox_retention_days, seconds=1)
    assert mailbox["id"] in store.purge(now=later)
    assert not trashed.exists() and mailbox["id"] not in store.trashed()


async def test_recreated_address_gets_a_fresh_empty_inbox(tenant, verified_domain, dovecot):
    first, first_password = await _create(tenant, f"eve@{verified_domain}")
    _deliver(dovecot, first["address"], _message("For the first eve", to=first["address"]))
    await tenant.ok("/v1/mail/mailboxes/delete", {"id": first["id"]})

    second, second_password = await _create(tenant, f"eve@{verified_domain}")
    assert second["id"] != first["id"]
    client = dovecot.login(second["address"], second_password)
    try:
        assert _inbox_subjects(client) == []
    finally:
        client.logout()
    with pytest.raises(imaplib.IMAP4.error):
        dovecot.login(second["address"], first_password)


async def test_quota_mb_becomes_the_dovecot_quota(tenant, verified_domain, dovecot):
    limited, password = await _create(tenant, f"fay@{verified_domain}", quotaMb=1)
    client = dovecot.login(limited["address"], password)
    try:
        status, (roots, quota) = client.getquotaroot("INBOX")
        assert status == "OK"
        assert quota[0] == b'"User quota" (STORAGE 0 1024)'
    finally:
        client.logout()
    assert "STORAGE" in dovecot.doveadm("quota", "get", "-u", limited["address"])

    big = _message("Too big", "x" * 2_000_000, to=limited["address"])
    with pytest.raises(smtplib.SMTPDataError) as over:
        _deliver(dovecot, limited["address"], big)
    assert over.value.smtp_code == 552

    unlimited, _ = await _create(tenant, f"gus@{verified_domain}")
    assert _deliver(dovecot, unlimited["address"], big) == {}


async def test_password_appears_in_no_log(tenant, verified_domain, dovecot, caplog):
    caplog.set_level(logging.DEBUG)
    mailbox, password = await _create(tenant, f"hal@{verified_domain}")
    dovecot.login(mailbox["address"], password).logout()
    wrong = password[::-1]
    with pytest.raises(imaplib.IMAP4.error):
        dovecot.login(mailbox["address"], wrong)
    await tenant.ok("/v1/mail/mailboxes/delete", {"id": mailbox["id"]})
    log = dovecot.log()
    assert f"user=<{mailbox['address']}>" in log  # the log is the right one, and it saw the log-ins
    for secret in (password, wrong):
        assert secret not in log
        assert secret not in caplog.text
