"""A real Dovecot for the mail tests: one per database backend, started with the config that
`orgmail dovecot-config` writes, on free loopback ports, reading the same database as the app.

The mail tests get their own `settings` and `app`: the data folder must be reachable by Dovecot's mail
user (pytest's temporary root is private to root), and deletes must kick through this Dovecot.
"""

from __future__ import annotations

import dataclasses
import imaplib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orgmail.app import create_app
from orgmail.mail.dovecot import LOCAL_CONFIG_NAME, write_config

HOST = "127.0.0.1"
MISSING = (
    "Dovecot is not installed; the mail tests need a real one. "
    "Install it with `make system-deps` (Debian: dovecot-imapd dovecot-lmtpd dovecot-sqlite dovecot-pgsql)."
)
# The tests' only additions, through the local.conf hook the docs describe: they log in wrong on
# purpose, all from 127.0.0.1, and Dovecot's brute-force defence (a 2 s failure delay, and a per-IP
# penalty of up to 15 s on every later log-in) would make the suite crawl. Moving the penalty socket
# away turns the penalty off (the auth process finds no socket and skips it).
TEST_LOCAL_CONFIG = """\
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    path = anvil-auth-penalty-off
  }
}
"""


@dataclass
class Dovecot:
    imap_port: int
    lmtp_port: int
    config: Path
    log_path: Path
    doveadm_binary: str

    def imap(self) -> imaplib.IMAP4:
        return imaplib.IMAP4(HOST, self.imap_port, timeout=10)

    def login(self, address: str, password: str) -> imaplib.IMAP4:
        client = self.imap()
        try:
            client.login(address, password)
        except Exception:
            client.shutdown()
            raise
        return client

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            [self.doveadm_binary, "-c", str(self.config), *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(MISSING, pytrace=False)
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_for_imap(process: subprocess.Popen, port: int, log_path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dovecot exited with {process.returncode}:\n{log_path.read_text()}", pytrace=False)
        try:
            with socket.create_connection((HOST, port), timeout=1) as conn:
                if conn.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"dovecot did not answer IMAP within {timeout} s:\n{log_path.read_text()}", pytrace=False)


@pytest.fixture(scope="session")
def mail_folder(database_url) -> Iterator[Path]:
    """Holds the data folder and the Dovecot folder; traversable (not listable) by the mail user."""
    path = Path(tempfile.mkdtemp(prefix="orgmail-mail-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(settings, mail_folder):
    data_dir = mail_folder / "data"
    data_dir.mkdir()
    return dataclasses.replace(settings, data_dir=data_dir, dovecot_config=mail_folder / "dovecot" / "dovecot.conf")


@pytest.fixture(scope="session")
def dovecot(settings, mail_folder) -> Iterator[Dovecot]:
    binary, doveadm = _binary("dovecot"), _binary("doveadm")
    imap_port, lmtp_port = _free_ports(2)
    files = write_config(
        settings, out_dir=settings.dovecot_config.parent, listen=HOST, imap_port=imap_port, lmtp_port=lmtp_port
    )
    assert files.config == settings.dovecot_config
    (files.config.parent / LOCAL_CONFIG_NAME).write_text(TEST_LOCAL_CONFIG)
    log_path = mail_folder / "dovecot.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "-F", "-c", str(files.config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_imap(process, imap_port, log_path)
        yield Dovecot(
            imap_port=imap_port, lmtp_port=lmtp_port, config=files.config, log_path=log_path, doveadm_binary=doveadm
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
async def app(settings, dovecot):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application
