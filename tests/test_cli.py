"""The CLI drives the same core: org, key, member, domain mark-verified and demo against a data folder."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orgmail.cli import app

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
