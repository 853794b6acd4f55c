"""`orgmail dovecot-config` and `orgmail purge`: what the CLI writes and removes."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgmail.cli import app as cli
from orgmail.config import load_settings
from orgmail.mail.dovecot import DoveadmSessions, folder_blocking_mail_user, render_config, sql_connection
from orgmail.mail.store import MaildirStore

runner = CliRunner()


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {"ORGMAIL_DATA_DIR": str(data_dir), "ORGMAIL_DATABASE_URL": "", **extra}


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: Dovecot's unix sockets live under `--out` (108 bytes at most), and
    pytest's own temporary folders can be longer than that (under pytest-xdist, by a worker's name)."""
    folder = Path(tempfile.mkdtemp(prefix="om-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_dovecot_config_writes_private_files_that_dovecot_accepts(short_tmp):
    data_dir, out = short_tmp / "data", short_tmp / "dovecot"
    result = runner.invoke(
        cli, ["dovecot-config", "--out", str(out), "--imap-port", "10143", "--lmtp-port", "10024"], env=_env(data_dir)
    )
    assert result.exit_code == 0, result.output
    conf, sql = out / "dovecot.conf", out / "dovecot-sql.conf.ext"
    assert conf.stat().st_mode & 0o777 == 0o600 and sql.stat().st_mode & 0o777 == 0o600
    assert f"connect = {data_dir / 'orgmail.db'}" in sql.read_text()
    assert f"'{data_dir / 'mail'}/' || mailbox_id AS home" in sql.read_text()

    doveconf = shutil.which("doveconf") or pytest.fail("Dovecot is not installed (make system-deps)", pytrace=False)
    parsed = subprocess.run([doveconf, "-n", "-c", str(conf)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    assert "port = 10143" in parsed.stdout and "port = 10024" in parsed.stdout
    assert f"base_dir = {out / 'run'}" in parsed.stdout

    # The database was migrated: the view Dovecot reads exists.
    with sqlite3.connect(data_dir / "orgmail.db") as db:
        assert db.execute("SELECT address, password_hash, mailbox_id, quota_rule FROM dovecot_users").fetchall() == []


def test_postgresql_url_becomes_a_libpq_connect_string():
    driver, connect = sql_connection(
        "postgresql+asyncpg://mail%20er:p%27w%20d@db.internal:5433/orgmail?sslmode=require"
    )
    assert driver == "pgsql"
    assert connect == r"host=db.internal port=5433 dbname=orgmail user='mail er' password='p\'w d' sslmode=require"
    assert sql_connection("postgresql+asyncpg://postgres@127.0.0.1/orgmail") == (
        "pgsql",
        "host=127.0.0.1 dbname=orgmail user=postgres",
    )


@pytest.mark.parametrize("folder", ["it's", "100%", "a b", "$HOME"])
def test_paths_dovecot_cannot_name_safely_are_refused(tmp_path, folder):
    settings = load_settings({"ORGMAIL_DATA_DIR": str(tmp_path / folder)}, secret_key=b"k")
    with pytest.raises(ValueError, match="cannot name"):
        render_config(settings, out_dir=tmp_path / "ok", listen="127.0.0.1", imap_port=143, lmtp_port=24)


def test_purge_removes_only_what_the_retention_allows(tmp_path):
    data_dir = tmp_path / "data"
    store = MaildirStore.from_settings(load_settings(_env(data_dir)))
    for mailbox_id in ("mbx_a", "mbx_b"):
        store.provision(mailbox_id)
        store.retire(mailbox_id, address=f"{mailbox_id}@example.org")

    kept = runner.invoke(cli, ["purge"], env=_env(data_dir, ORGMAIL_MAILBOX_RETENTION="7"))
    assert kept.exit_code == 0, kept.output
    assert '"purged": []' in kept.output and sorted(store.trashed()) == ["mbx_a", "mbx_b"]

    purged = runner.invoke(cli, ["purge"], env=_env(data_dir, ORGMAIL_MAILBOX_RETENTION="0"))
    assert purged.exit_code == 0, purged.output
    assert "mbx_a" in purged.output and store.trashed() == {}
    assert not (data_dir / "mail" / "mbx_a").exists()


def test_kick_without_a_reachable_dovecot_is_not_an_error(tmp_path, caplog):
    DoveadmSessions(doveadm="no-such-doveadm").disconnect("a@example.org")
    doveadm = shutil.which("doveadm") or pytest.fail("Dovecot is not installed (make system-deps)", pytrace=False)
    DoveadmSessions(doveadm=doveadm, config=tmp_path / "absent.conf").disconnect("a@example.org")
    assert "doveadm kick a@example.org failed" in caplog.text


def test_a_folder_the_mail_user_cannot_enter_is_named():
    with tempfile.TemporaryDirectory(prefix="orgmail-reach-") as top:  # /tmp itself is open to all
        Path(top).chmod(0o711)
        private = Path(top) / "private"
        settings = load_settings(
            {"ORGMAIL_DATA_DIR": str(private / "data"), "ORGMAIL_MAIL_USER": "nobody"}, secret_key=b"k"
        )
        (private / "data" / "mail").mkdir()
        private.chmod(0o700)
        assert folder_blocking_mail_user(settings) == private
        private.chmod(0o711)
        assert folder_blocking_mail_user(settings) is None
