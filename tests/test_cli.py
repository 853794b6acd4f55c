"""The CLI drives the same core: org, key, member, domain mark-verified and demo against a data folder;
and a bad setting or an unreachable database is one line naming it, with exit status 2 or 1, never a
traceback (the real `orgmail` binary, in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgmail.cli import app
from orgmail.config import async_database_url, printable_database_url
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin

runner = CliRunner()


@pytest.fixture
def env(tmp_path):
    return {"ORGMAIL_DATA_DIR": str(tmp_path)}


def _run(env, *args):
    result = runner.invoke(app, list(args), env=env)
    return result


def test_org_key_member_round_trip(env, tmp_path):
    org = json.loads(_run(env, "org", "create", "Acme").stdout)
    assert org["id"].startswith("org_") and org["name"] == "Acme"
    key = json.loads(_run(env, "key", "create", "--org", org["id"]).stdout)
    assert key["key"].startswith("omk_") and key["orgId"] == org["id"]
    member = json.loads(_run(env, "member", "add", "--org", org["id"], "u-1").stdout)
    assert member == {"userId": "u-1", "orgId": org["id"]}
    assert (tmp_path / "orgmail.db").exists() and (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_errors_are_one_line_and_exit_1(env):
    result = _run(env, "key", "create", "--org", "org_missing")
    assert result.exit_code == 1
    assert "error: not_found" in result.stderr and "Traceback" not in result.output


def test_demo_prints_a_working_key_and_mailbox(env, tmp_path):
    result = _run(env, "demo")
    assert result.exit_code == 0, result.output
    demo = json.loads(result.stdout)
    assert demo["apiKey"].startswith("omk_") and demo["domain"] == "demo.example.com"
    assert (tmp_path / "mail" / demo["mailbox"]["id"] / "Maildir" / "cur").is_dir()
    assert "development only" in result.stderr
    again = _run(env, "demo")
    assert again.exit_code == 1 and "--domain" in again.stderr
    assert _run(env, "demo", "--domain", "demo2.example.com").exit_code == 0


# --- operators get one line, not a traceback: the real `orgmail` binary in a subprocess ----------
# Each process pays for the imports (about a second): commands that show one thing run side by side.

ORGMAIL = Path(sys.executable).with_name("orgmail")


def _start(tmp_path: Path, command: list[str], **variables: str) -> subprocess.Popen[str]:
    """`orgmail COMMAND` with these ORGMAIL_* variables and no others from our environment."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("ORGMAIL_")}
    environ.update(ORGMAIL_DATA_DIR=str(tmp_path / "data"), **variables)
    return subprocess.Popen([ORGMAIL, *command], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _orgmail(tmp_path: Path, *commands: list[str], **variables: str) -> list[subprocess.CompletedProcess[str]]:
    """Each command, side by side, with the same variables."""
    return [_finish(process) for process in [_start(tmp_path, command, **variables) for command in commands]]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.stderr.splitlines()


@pytest.mark.parametrize(
    "variable, value, accepted",
    [
        ("ORGMAIL_DATABASE_URL", "mysql://app:s3cret-pw@db.example/app", "postgresql://"),
        ("ORGMAIL_RELAY_URL", "smtpx://app:s3cret-pw@relay.example", "smtp+starttls://"),
        ("ORGMAIL_MAX_RECIPIENTS", "abc", "whole number"),
        ("ORGMAIL_DATABASE_URL", "sqlite:////no-such-folder/orgmail.db", "/no-such-folder does not exist"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exits_2(tmp_path, variable, value, accepted):
    for result in _orgmail(tmp_path, ["serve"], ["migrate"], **{variable: value}):
        assert result.returncode == 2, result.args
        [line] = _error_lines(result)
        assert line.startswith(f"error: {variable}") and accepted in line
        assert "s3cret-pw" not in result.stdout + result.stderr


def test_every_bad_setting_is_reported_at_once(tmp_path):
    [result] = _orgmail(
        tmp_path,
        ["migrate"],
        ORGMAIL_DATABASE_URL="mysql://db.example/app",
        ORGMAIL_RELAY_URL="smtpx://relay.example",
        ORGMAIL_MAX_RECIPIENTS="abc",
        ORGMAIL_RELAY_PIPELINING="maybe",
        ORGMAIL_DNS_NAMESERVERS="dns.example.net",
        ORGMAIL_MAIL_USER="no-such-user-here",
    )
    assert result.returncode == 2
    named = [line.removeprefix("error: ").split("=")[0].split(":")[0] for line in _error_lines(result)]
    assert named == [
        "ORGMAIL_DATABASE_URL",
        "ORGMAIL_RELAY_URL",
        "ORGMAIL_DNS_NAMESERVERS",
        "ORGMAIL_MAX_RECIPIENTS",
        "ORGMAIL_RELAY_PIPELINING",
        "ORGMAIL_MAIL_USER",
    ]


def test_a_database_that_refuses_connections_is_one_line_and_exits_1(tmp_path):
    port = _closed_port()
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{port}/orgmail"
    commands = [["serve"], ["migrate"], ["org", "create", "Acme"], ["dovecot-config", "--out", str(tmp_path / "d")]]
    for result in _orgmail(tmp_path, *commands, ORGMAIL_DATABASE_URL=url):
        assert result.returncode == 1, result.args
        assert _error_lines(result) == [
            f"error: cannot reach the database at postgresql://127.0.0.1:{port}/orgmail (ORGMAIL_DATABASE_URL): "
            "connection refused"
        ]


def test_an_unreachable_database_names_the_reason(tmp_path):
    reasons = {
        "postgresql://app@no-such-host.invalid/orgmail": "unknown host",
        "postgresql://no_such_role@127.0.0.1:5432/postgres": 'login refused: role "no_such_role" does not exist',
        "postgresql://postgres@127.0.0.1:5432/no_such_db": 'database "no_such_db" does not exist',
        f"sqlite:///{tmp_path / 'not-a-database.txt'}": "file is not a database",
    }
    (tmp_path / "not-a-database.txt").write_text("orgmail? no: a text file\n" * 100)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        reasons[f"postgresql://app@127.0.0.1:{silent.getsockname()[1]}/orgmail"] = "timed out"
        started = time.monotonic()
        running = {url: _start(tmp_path, ["migrate"], ORGMAIL_DATABASE_URL=url) for url in reasons}
        results = {url: _finish(process) for url, process in running.items()}
    assert time.monotonic() - started < 20  # the silent one: the engine's 5 s connect timeout, not Alembic's 60 s
    for url, reason in reasons.items():
        assert results[url].returncode == 1, url
        [line] = _error_lines(results[url])
        assert line.startswith("error: cannot reach the database at ") and line.endswith(
            f"(ORGMAIL_DATABASE_URL): {reason}"
        )


async def test_a_database_that_refuses_the_migration_is_one_line_and_exits_1(tmp_path):
    import asyncpg

    name = f"orgmail_refuses_{uuid.uuid4().hex[:10]}"
    server = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]  # postgresql://postgres@127.0.0.1:5432
    await _postgres_admin(f'CREATE ROLE "{name}" LOGIN')
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        connection = await asyncpg.connect(f"{server}/{name}")
        await connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # the default since PostgreSQL 15
        await connection.close()
        url = f"postgresql://{name}@{server.rpartition('@')[2]}/{name}"
        [result] = await asyncio.to_thread(_orgmail, tmp_path, ["migrate"], ORGMAIL_DATABASE_URL=url)
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _postgres_admin(f'DROP ROLE IF EXISTS "{name}"')
    assert result.returncode == 1
    assert _error_lines(result) == [
        f"error: cannot migrate the database at {printable_database_url(async_database_url(url))} "
        "(ORGMAIL_DATABASE_URL): permission denied for schema public"
    ]
