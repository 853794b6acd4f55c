"""The OpenAPI document is the truth: schemathesis fuzzes a live server from it and finds no 5xx,
no undeclared status and no answer that breaks its schema.

The service runs as `orgmail serve` in a subprocess (SQLite in a temp data folder), as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin
from tests.processes import free_port

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def live_database(request):
    if request.param == "sqlite":
        yield None  # the embedded default in the data folder
        return
    name = f"orgmail_contract_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def live_server(live_database, tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("live")
    env = {
        **os.environ,
        "ORGMAIL_DATA_DIR": str(data),
        "ORGMAIL_ADMIN_TOKEN": "contract-admin",
        "ORGMAIL_RATE_LIMIT": "0",
    }
    if live_database:
        env["ORGMAIL_DATABASE_URL"] = live_database
    process = subprocess.Popen(
        [str(BIN / "orgmail"), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"orgmail serve did not start: {process.stderr.read().decode()[-2000:]}")
    admin = {"Authorization": "Bearer contract-admin"}
    org = httpx.post(f"{base}/v1/admin/orgs/create", json={"name": "Contract"}, headers=admin).json()["org"]
    key = httpx.post(f"{base}/v1/admin/keys/create", json={"orgId": org["id"]}, headers=admin).json()["key"]
    yield base, key
    process.terminate()
    process.wait(timeout=40)


def test_schemathesis_finds_no_contract_violation(live_server):
    base, key = live_server
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{base}/openapi.json",
            "-H",
            f"Authorization: Bearer {key}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--suppress-health-check",
            "all",
            "--exclude-path-regex",
            "^/v1/admin/keys/revoke$",
        ],  # would revoke the key the fuzzer uses
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout, result.stdout[-3000:]
    print(result.stdout[-1500:])
