"""`orgmail postfix-config`: the files it writes, the SQLite copy it creates (and the CLI keeps up to
date), and its one-line errors. What Postfix does with the files: tests/postfix/test_inbound_mx.py."""

from __future__ import annotations

import asyncio
import grp
import json
import shutil
import socket
import sqlite3
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgmail.cli import app
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin

runner = CliRunner()
BOUNCE_DOMAIN = "bounces.cli.test"

try:
    grp.getgrnam("postfix")
except KeyError:  # the files are written for the postfix group; `make system-deps` installs Postfix
    pytest.skip("no postfix group here (Debian's postfix package creates it)", allow_module_level=True)


@pytest.fixture
def folder() -> Iterator[Path]:
    """Not under pytest's temporary root, which the postfix group cannot enter."""
    path = Path(tempfile.mkdtemp(prefix="orgmail-postfix-cli-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env={"ORGMAIL_DATABASE_URL": "", **env})


def _readable_by_postfix_only(path: Path) -> bool:
    info = path.stat()
    return stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == grp.getgrnam("postfix").gr_gid


def test_sqlite_fragment_tables_and_a_copy_the_cli_keeps_up_to_date(folder):
    env = {
        "ORGMAIL_DATA_DIR": str(folder / "data"),
        "ORGMAIL_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
        "ORGMAIL_INBOUND_LISTEN": "0.0.0.0:2526",
    }
    written = _run(env, "postfix-config", "--out", str(folder / "postfix"), "--lmtp", "127.0.0.1:2424")
    assert written.exit_code == 0, written.output
    main_cf = (folder / "postfix" / "main.cf").read_text()
    out = folder / "postfix"
    for line in (
        f"virtual_mailbox_domains = proxy:sqlite:{out}/domains.cf",
        f"virtual_mailbox_maps = proxy:sqlite:{out}/mailboxes.cf",
        "virtual_transport = lmtp:inet:127.0.0.1:2424",
        f"relay_domains = {BOUNCE_DOMAIN}",
        f"relay_recipient_maps = regexp:{out}/bounce-recipients.regexp",
        f"transport_maps = texthash:{out}/transport",
    ):
        assert line in main_cf.splitlines()
    assert "mynetworks" not in main_cf.replace("(mynetworks", "")  # no relay permissions granted
    # A wildcard listen address is reached on loopback.
    assert f"{BOUNCE_DOMAIN} smtp:[127.0.0.1]:2526" in (out / "transport").read_text()
    for name in ("main.cf", "domains.cf", "mailboxes.cf", "transport", "bounce-recipients.regexp"):
        assert _readable_by_postfix_only(out / name), name

    copy = folder / "data" / "orgmail-postfix.sqlite"
    assert f"dbpath = {copy}" in (out / "domains.cf").read_text()
    assert _readable_by_postfix_only(copy)
    with sqlite3.connect(copy) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # no WAL: other users can read it
        assert reader.execute("SELECT count(*) FROM domains").fetchone() == (0,)

    org_id = json.loads(_run(env, "org", "create", "Cli Corp").stdout)["id"]
    domain = json.loads(_run(env, "domain", "add", "mx.cli.test", "--org", org_id).stdout)["domain"]
    with sqlite3.connect(copy) as reader:
        assert reader.execute("SELECT name FROM domains").fetchall() == []  # pending: not Postfix's to take
    assert _run(env, "domain", "mark-verified", domain["id"], "--org", org_id).exit_code == 0
    with sqlite3.connect(copy) as reader:
        assert reader.execute("SELECT name FROM domains").fetchall() == [("mx.cli.test",)]
    assert _readable_by_postfix_only(copy)  # updated in place: the same file, mode and group


async def test_postgresql_tables_hold_the_password_which_is_printed_nowhere(folder):
    name = f"orgmail_pfcli_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgres@", "postgres:s3cret-pw@")  # trust auth
        env = {"ORGMAIL_DATA_DIR": str(folder / "data"), "ORGMAIL_DATABASE_URL": f"{base}/{name}"}
        # In a thread: the command runs its own event loop.
        written = await asyncio.to_thread(
            runner.invoke, app, ["postfix-config", "--out", str(folder / "postfix")], env=env
        )
        assert written.exit_code == 0, written.output
        assert "s3cret-pw" not in written.output
        domains = (folder / "postfix" / "domains.cf").read_text()
        assert "password = s3cret-pw" in domains and f"dbname = {name}" in domains
        assert "FROM postfix_domains WHERE name = '%s'" in domains
        assert "FROM postfix_mailboxes WHERE address = '%s'" in (folder / "postfix" / "mailboxes.cf").read_text()
        assert _readable_by_postfix_only(folder / "postfix" / "domains.cf")
        main_cf = (folder / "postfix" / "main.cf").read_text()
        assert "relay_domains" not in main_cf  # no bounce domain, no relaying for it
        assert not (folder / "data" / "orgmail-postfix.sqlite").exists()
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    "args, variables, says",
    [
        (["--lmtp", "dovecot"], {}, "error: --lmtp 'dovecot': expected HOST:PORT"),
        ([], {"ORGMAIL_BOUNCE_DOMAIN": BOUNCE_DOMAIN}, "needs its inbound listener: set ORGMAIL_INBOUND_LISTEN"),
    ],
)
def test_what_cannot_be_written_is_one_line_and_exits_2(folder, args, variables, says):
    env = {"ORGMAIL_DATA_DIR": str(folder / "data"), **variables}
    result = _run(env, "postfix-config", "--out", str(folder / "postfix"), *args)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert says in line
    assert not (folder / "postfix" / "main.cf").exists()


def test_a_folder_postfix_cannot_enter_is_named(folder):
    private = folder / "private"
    private.mkdir(mode=0o700)
    result = _run({"ORGMAIL_DATA_DIR": str(private / "data")}, "postfix-config", "--out", str(folder / "postfix"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: Postfix (group postfix) cannot enter {private}, so it cannot read "
        f"{private / 'data' / 'orgmail-postfix.sqlite'}: let it (chmod o+x or g+x with group postfix) "
        "or move the data folder (ORGMAIL_DATA_DIR)"
    ]


def test_an_unreachable_database_is_one_line_and_exits_1(folder):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{port}/orgmail"
    result = _run(
        {"ORGMAIL_DATA_DIR": str(folder / "data"), "ORGMAIL_DATABASE_URL": url},
        "postfix-config",
        "--out",
        str(folder / "postfix"),
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: cannot reach the database at postgresql://127.0.0.1:{port}/orgmail (ORGMAIL_DATABASE_URL): "
        "connection refused"
    ]
