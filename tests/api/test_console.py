"""The built web console is served at /console/ and / leads there; the API routes always win."""

from __future__ import annotations

import httpx
import pytest

import orgmail.app
from orgmail.app import create_app
from orgmail.config import load_settings
from orgmail.db.session import upgrade_database


async def _client(tmp_path, console_dir, monkeypatch) -> tuple[httpx.AsyncClient, object]:
    monkeypatch.setattr(orgmail.app, "CONSOLE_DIR", console_dir)
    url = f"sqlite+aiosqlite:///{tmp_path / 'orgmail.db'}"
    upgrade_database(url)
    app = create_app(load_settings({}, data_dir=tmp_path, database_url=url, secret_key=b"console-test"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://orgmail.test"), app


@pytest.fixture
def built_console(tmp_path):
    directory = tmp_path / "console"
    (directory / "assets").mkdir(parents=True)
    (directory / "index.html").write_text("<!doctype html><title>orgmail console</title>")
    (directory / "assets" / "index.js").write_text("console.log('hi')")
    return directory


async def test_root_redirects_to_the_built_console(tmp_path, built_console, monkeypatch):
    client, app = await _client(tmp_path, built_console, monkeypatch)
    async with app.router.lifespan_context(app), client:
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/console/"
        page = await client.get("/console/")
        assert page.status_code == 200 and "orgmail console" in page.text
        asset = await client.get("/console/assets/index.js")
        assert asset.status_code == 200
        missing = await client.get("/console/assets/nope.js")
        assert missing.status_code == 404


async def test_api_routes_win_over_the_console(tmp_path, built_console, monkeypatch):
    client, app = await _client(tmp_path, built_console, monkeypatch)
    async with app.router.lifespan_context(app), client:
        response = await client.post("/v1/mail/mailboxes/list", json={})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert "/" not in app.openapi()["paths"]


async def test_without_a_build_root_leads_to_the_api_docs(tmp_path, monkeypatch):
    client, app = await _client(tmp_path, tmp_path / "not-built", monkeypatch)
    async with app.router.lifespan_context(app), client:
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/docs"
        assert (await client.get("/console/")).status_code == 404
