"""`orgmail domain add` and `orgmail domain verify` against the loopback DNS server, on SQLite."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from orgmail.cli import app


@pytest.fixture
def run(tmp_path, dns_server):
    host, port = dns_server.nameserver
    env = {
        "ORGMAIL_DATA_DIR": str(tmp_path),
        "ORGMAIL_SECRET_KEY": "cli-test-secret",
        "ORGMAIL_DNS_NAMESERVERS": f"{host}:{port}",
        "ORGMAIL_DATABASE_URL": "",
    }
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env=env)

    return invoke


def test_domain_add_prints_records_and_verify_passes_once_they_are_published(run, dns_server):
    org_id = json.loads(run("org", "create", "Cli Corp").stdout)["id"]
    name = f"cli{uuid.uuid4().hex[:8]}.example.com"

    added = run("domain", "add", name, "--org", org_id)
    assert added.exit_code == 0, added.output
    printed = json.loads(added.stdout)
    assert printed["domain"]["name"] == name and printed["domain"]["status"] == "pending"
    assert [r["purpose"] for r in printed["records"]] == ["verification", "dkim", "dkim", "spf", "dmarc"]
    assert f"orgmail domain verify {printed['domain']['id']} --org {org_id}" in added.stderr

    pending = run("domain", "verify", printed["domain"]["id"], "--org", org_id)
    assert pending.exit_code == 1
    assert [c["ok"] for c in json.loads(pending.stdout)["checks"]] == [False, False, False]

    dns_server.publish_all(r for r in printed["records"] if r["required"])
    verified = run("domain", "verify", printed["domain"]["id"], "--org", org_id)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["domain"]["status"] == "verified"
    assert f"{name} is verified" in verified.stderr


def test_domain_errors_are_one_line_not_a_traceback(run):
    org_id = json.loads(run("org", "create", "Cli Corp").stdout)["id"]
    name = f"cli{uuid.uuid4().hex[:8]}.example.com"
    assert run("domain", "add", name, "--org", org_id).exit_code == 0
    taken = run("domain", "add", name, "--org", org_id)
    assert taken.exit_code == 1 and "domain_taken" in taken.stderr and "Traceback" not in taken.output
    unknown = run("domain", "verify", "dom_01AAAAAAAAAAAAAAAAAAAAAAAA", "--org", org_id)
    assert unknown.exit_code == 1 and "not_found" in unknown.stderr
