"""`orgmail check` against real parts: SQLite files and PostgreSQL databases (migrated and not), an
SMTP relay on loopback (plain, STARTTLS with AUTH, down, silent), the loopback DNS server and a dead
one, Dovecot as far as it is installed, and the data folder."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from orgmail.check import (
    CheckResult,
    check_all,
    check_data_folder,
    check_database,
    check_dns,
    check_dovecot,
    check_relay,
)
from orgmail.config import load_settings, printable_database_url
from orgmail.db.session import MIGRATIONS_DIR, upgrade_database
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin
from tests.dns_server import unused_udp_port
from tests.smtp_relay import SmtpTestRelay, make_certificate

NEWEST = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
ORGMAIL = Path(sys.executable).with_name("orgmail")


def _settings(data_dir: Path, **overrides):
    overrides.setdefault("database_url", f"sqlite+aiosqlite:///{data_dir / 'orgmail.db'}")
    return load_settings({}, data_dir=data_dir, secret_key=b"check-test", **overrides)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_line_is_status_part_and_detail():
    assert CheckResult("relay", "fail", "smtp://h:25 connection refused").line == (
        "FAIL  relay     smtp://h:25 connection refused"
    )
    assert CheckResult("database", "ok", "x").line == "ok    database  x"


# --- database ------------------------------------------------------------------------------------
@pytest.fixture
async def empty_postgres():
    name = f"orgmail_check_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_migrated_database_is_ok(database_url, tmp_path):
    # `database_url` is the session's database, SQLite and PostgreSQL in turn, migrated.
    result = await check_database(_settings(tmp_path, database_url=database_url))
    assert result.status == "ok" and result.detail.endswith(f"reachable, migrated to {NEWEST}")


async def test_a_database_not_migrated_or_behind_is_a_warning(empty_postgres, tmp_path):
    fresh = await check_database(_settings(tmp_path, database_url=empty_postgres))
    assert fresh.status == "warn" and f"reachable, not migrated (newest is {NEWEST})" in fresh.detail
    assert fresh.detail.startswith(printable_database_url(empty_postgres) + " reachable")

    await asyncio.to_thread(upgrade_database, empty_postgres, "0002")
    behind = await check_database(_settings(tmp_path, database_url=empty_postgres))
    assert behind.status == "warn" and f"at 0002 (newest is {NEWEST}): run `orgmail migrate`" in behind.detail


async def test_a_database_migrated_by_a_newer_orgmail_fails(tmp_path):
    path = tmp_path / "newer.db"
    await asyncio.to_thread(upgrade_database, f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    result = await check_database(_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{path}"))
    assert result.status == "fail" and "at 9999, which this orgmail does not know" in result.detail


async def test_an_empty_sqlite_file_is_not_migrated_and_a_missing_one_is_not_created(tmp_path):
    sqlite3.connect(tmp_path / "empty.db").close()
    empty = await check_database(_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    assert empty.status == "warn" and "not migrated" in empty.detail

    missing = await check_database(_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"))
    assert missing.status == "warn" and "does not exist yet" in missing.detail
    assert not (tmp_path / "new.db").exists()


async def test_a_database_that_is_down_fails(tmp_path):
    port = _closed_port()
    url = f"postgresql+asyncpg://app:s3cret-pw@127.0.0.1:{port}/orgmail"
    result = await check_database(_settings(tmp_path, database_url=url))
    assert result == CheckResult("database", "fail", f"postgresql://127.0.0.1:{port}/orgmail connection refused")


# --- relay ---------------------------------------------------------------------------------------
async def test_the_outbox_is_ok_when_its_folder_is_writable(tmp_path):
    result = await check_relay(_settings(tmp_path))
    assert result == CheckResult("relay", "ok", f"outbox {tmp_path / 'outbox'} writable")


async def test_an_outbox_that_is_not_a_folder_fails(tmp_path):
    (tmp_path / "outbox").write_text("a file where the folder should be")
    result = await check_relay(_settings(tmp_path))
    assert result.status == "fail" and result.detail == f"outbox {tmp_path / 'outbox'} is not a folder"


async def test_a_relay_that_answers_is_ok_with_the_extensions_it_offers(smtp_relay, tmp_path):
    result = await check_relay(_settings(tmp_path, relay_url=smtp_relay.url))
    assert result.status == "ok", result.detail
    offered = "PIPELINING, SIZE 33554432 (not STARTTLS, AUTH, DSN)"
    assert result.detail == f"{smtp_relay.url} (relay.test) answered EHLO: {offered}"


async def test_a_relay_that_takes_less_than_our_largest_message_is_a_warning(smtp_relay, tmp_path):
    settings = _settings(tmp_path, relay_url=smtp_relay.url, max_message_bytes=50 * 1024 * 1024)
    result = await check_relay(settings)
    assert result.status == "warn"
    assert "the relay takes at most 33554432 bytes, less than ORGMAIL_MAX_MESSAGE_BYTES=52428800" in result.detail


async def test_a_relay_that_is_down_fails(tmp_path):
    port = _closed_port()
    result = await check_relay(_settings(tmp_path, relay_url=f"smtp://127.0.0.1:{port}"))
    assert result == CheckResult("relay", "fail", f"smtp://127.0.0.1:{port} connection refused")


async def test_a_relay_that_never_answers_fails_within_its_timeout(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = await check_relay(_settings(tmp_path, relay_url=url, relay_timeout_seconds=0.5))
    assert result == CheckResult("relay", "fail", f"{url} no answer within 0.5 s")
    assert time.monotonic() - started < 3


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
async def tls_relay(certificate):
    """Like a submission port: STARTTLS required, then AUTH."""
    relay = SmtpTestRelay(tls=certificate, credentials=("app", "s3cret-pw"))
    await relay.start()
    yield relay
    await relay.stop()


async def test_starttls_is_verified_and_our_credentials_accepted(tls_relay, certificate, tmp_path):
    url = f"smtp+starttls://app:s3cret-pw@127.0.0.1:{tls_relay.port}?cafile={certificate[0]}"
    result = await check_relay(_settings(tmp_path, relay_url=url))
    assert result.status == "ok", result.detail
    assert f"smtp+starttls://***:***@127.0.0.1:{tls_relay.port}" in result.detail and "s3cret-pw" not in result.detail
    assert (
        "(relay.test) answered EHLO: STARTTLS, AUTH LOGIN PLAIN, PIPELINING, SIZE 33554432 (not DSN)" in result.detail
    )
    assert "TLSv1.3, certificate verified; logged in" in result.detail


async def test_a_wrong_password_fails(tls_relay, certificate, tmp_path):
    url = f"smtp+starttls://app:wrong@127.0.0.1:{tls_relay.port}?cafile={certificate[0]}"
    result = await check_relay(_settings(tmp_path, relay_url=url))
    assert result.status == "fail" and result.detail.endswith(
        "refused our credentials: 535 5.7.8 Authentication credentials invalid"
    )
    assert "wrong" not in result.detail


async def test_a_certificate_that_does_not_verify_fails(tls_relay, tmp_path):
    url = f"smtp+starttls://app:s3cret-pw@127.0.0.1:{tls_relay.port}"  # the system CAs do not know ours
    result = await check_relay(_settings(tmp_path, relay_url=url))
    assert result.status == "fail"
    assert "TLS certificate not verified: self-signed certificate (a private CA: add ?cafile=" in result.detail


async def test_verify_false_is_a_warning(tls_relay, tmp_path):
    url = f"smtp+starttls://app:s3cret-pw@127.0.0.1:{tls_relay.port}?verify=false"
    result = await check_relay(_settings(tmp_path, relay_url=url))
    assert result.status == "warn" and "certificate NOT verified (verify=false)" in result.detail


async def test_starttls_asked_of_a_relay_that_does_not_offer_it_fails(smtp_relay, tmp_path):
    url = f"smtp+starttls://127.0.0.1:{smtp_relay.port}"
    result = await check_relay(_settings(tmp_path, relay_url=url))
    assert result == CheckResult("relay", "fail", f"{url} does not offer STARTTLS, which smtp+starttls:// needs")


# --- DNS -----------------------------------------------------------------------------------------
async def test_a_nameserver_that_answers_is_ok_even_with_nxdomain(dns_server, tmp_path):
    host, port = dns_server.nameserver
    result = await check_dns(_settings(tmp_path, dns_nameservers=(dns_server.nameserver,)))
    assert result.status == "ok", result.detail
    assert result.detail.startswith(f"{host}:{port} answered for example.com (NXDOMAIN) in ")


async def test_a_dead_nameserver_fails_in_seconds(tmp_path):
    dead = ("127.0.0.1", unused_udp_port())
    started = time.monotonic()
    result = await check_dns(_settings(tmp_path, dns_nameservers=(dead,), dns_timeout_seconds=1.0))
    assert result.status == "fail" and result.detail.startswith(f"127.0.0.1:{dead[1]} ")
    assert time.monotonic() - started < 3


# --- Dovecot and the data folder -----------------------------------------------------------------
def test_dovecot_not_configured_is_a_warning(tmp_path):
    result = check_dovecot(_settings(tmp_path))
    assert result.status == "warn" and result.detail.startswith("not configured (ORGMAIL_DOVECOT_CONFIG unset)")


def test_dovecot_configured_needs_doveadm_and_a_readable_config(tmp_path):
    config = tmp_path / "dovecot.conf"
    config.write_text("# orgmail test\n")
    result = check_dovecot(_settings(tmp_path, dovecot_config=config))
    doveadm = shutil.which("doveadm")
    if doveadm is None:  # Dovecot may not be installed here: then that is what the check says
        assert result.status == "fail" and "doveadm not found" in result.detail
    else:
        assert result == CheckResult("dovecot", "ok", f"doveadm at {doveadm}, config {config} readable")

    missing = check_dovecot(_settings(tmp_path, dovecot_config=tmp_path / "absent.conf", doveadm_path="no-doveadm"))
    assert missing.status == "fail"
    assert "'no-doveadm' is not on PATH (ORGMAIL_DOVEADM)" in missing.detail
    assert f"{tmp_path / 'absent.conf'} is not readable (No such file or directory)" in missing.detail


def test_the_data_folder_is_writable_and_open_to_the_mail_user():
    with tempfile.TemporaryDirectory(prefix="orgmail-check-") as top:  # /tmp itself is open to all
        data = Path(top) / "data"
        (data / "mail").mkdir(parents=True)
        Path(top).chmod(0o711)
        settings = _settings(data, mail_uid=65534, mail_gid=65534)
        assert check_data_folder(settings).status == "ok"

        Path(top).chmod(0o700)
        blocked = check_data_folder(settings)
        assert blocked.status == "fail"
        assert blocked.detail.startswith(f"the mail user (uid 65534) cannot enter {top}, so Dovecot cannot reach")


# --- the command ---------------------------------------------------------------------------------
async def _orgmail_check(tmp_path: Path, **variables: str) -> tuple[int, list[str], str]:
    """The real binary, run without blocking this loop (the SMTP relay answers from it)."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("ORGMAIL_")}
    environ.update(ORGMAIL_DATA_DIR=str(tmp_path), ORGMAIL_MAIL_USER=str(os.geteuid()), **variables)
    process = await asyncio.create_subprocess_exec(
        ORGMAIL, "check", env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert b"Traceback" not in stdout + stderr, stderr.decode()
    assert process.returncode is not None
    return process.returncode, stdout.decode().splitlines(), stderr.decode()


async def test_check_reports_every_part_and_exits_1_when_one_fails(smtp_relay, dns_server, tmp_path):
    host, port = dns_server.nameserver
    await asyncio.to_thread(upgrade_database, f"sqlite+aiosqlite:///{tmp_path / 'orgmail.db'}")
    base = {"ORGMAIL_DNS_NAMESERVERS": f"{host}:{port}", "ORGMAIL_RELAY_URL": smtp_relay.url}

    status, lines, _ = await _orgmail_check(tmp_path, **base)
    assert [line.split()[:2] for line in lines] == [
        ["ok", "database"],
        ["ok", "relay"],
        ["ok", "dns"],
        ["warn", "dovecot"],
        ["ok", "data"],
    ]
    assert (
        status == 0
        and lines[0] == f"ok    database  sqlite:///{tmp_path / 'orgmail.db'} reachable, migrated to {NEWEST}"
    )

    closed = _closed_port()
    status, lines, _ = await _orgmail_check(tmp_path, **{**base, "ORGMAIL_RELAY_URL": f"smtp://127.0.0.1:{closed}"})
    assert status == 1 and lines[1] == f"FAIL  relay     smtp://127.0.0.1:{closed} connection refused"


async def test_check_with_bad_settings_exits_2_and_checks_nothing(tmp_path):
    status, lines, stderr = await _orgmail_check(tmp_path, ORGMAIL_RELAY_URL="smtpx://relay.example")
    assert status == 2 and lines == []
    assert stderr.startswith("error: ORGMAIL_RELAY_URL: unsupported relay URL 'smtpx://relay.example'")


async def test_check_all_keeps_its_order_and_never_raises(tmp_path):
    settings = _settings(tmp_path, database_url="postgresql+asyncpg://app@127.0.0.1:1/x", mail_uid=os.geteuid())
    results = await check_all(settings)
    assert [result.part for result in results] == ["database", "relay", "dns", "dovecot", "data"]
    assert results[0].status == "fail"
