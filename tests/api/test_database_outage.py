"""A database outage answers 503 `unavailable` with Retry-After, and the service reconnects by itself.

Two real outages: the network path to PostgreSQL cut and restored by a TCP proxy, and a private
PostgreSQL server stopped and started under load (tests/postgres_server.py).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from orgmail.app import create_app
from orgmail.config import load_settings
from orgmail.core import domains, orgs
from orgmail.db.session import upgrade_database
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_admin
from tests.postgres_server import PrivatePostgres
from tests.processes import OrgmailServer, provision_sender


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, as a database restart would."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()


@pytest.fixture
async def proxied_app(tmp_path):
    name = f"orgmail_outage_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    user = POSTGRES_ADMIN_URL.split("://", 1)[1].split("@", 1)[0]
    upgrade_database(f"postgresql+asyncpg://{user}@127.0.0.1:5432/{name}")  # direct: blocks this loop
    url = f"postgresql+asyncpg://{user}@127.0.0.1:{proxy.port}/{name}"
    settings = load_settings({}, data_dir=tmp_path, database_url=url, secret_key=b"k")
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            async with app.state.session_factory() as session:
                org = await orgs.create_org(session, name="Outage")
                _row, key = await orgs.create_api_key(session, org_id=org.id)
                domain = await domains.add_domain(session, org_id=org.id, name="outage.example", vault=app.state.vault)
                await domains.mark_verified(session, org_id=org.id, domain_id=domain.id)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://orgmail.test", headers={"Authorization": f"Bearer {key}"}
            ) as http:
                yield http, proxy
    finally:
        await proxy.cut() if proxy._server and proxy._server.is_serving() else None
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_outage_answers_503_then_recovers_by_itself(proxied_app):
    http, proxy = proxied_app
    assert (await http.post("/v1/mail/suppressions/add", json={"email": "a@example.com"})).status_code == 200

    await proxy.cut()
    down = await http.post("/v1/mail/suppressions/list", json={})
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "unavailable"
    assert down.headers["retry-after"]
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert (await http.get("/healthz")).status_code == 200  # the process itself is up

    await proxy.start()  # same port: the database is back
    back = await http.post("/v1/mail/suppressions/list", json={})
    assert back.status_code == 200, back.text
    assert [s["email"] for s in back.json()["suppressions"]] == ["a@example.com"]
    assert (await http.get("/readyz")).status_code == 200


async def test_a_send_during_an_outage_answers_503_and_the_next_one_after_it_is_sent(proxied_app):
    """The send log's statements run on their own asyncpg pool: it must fail and recover the same way."""
    http, proxy = proxied_app
    message = {"from": "shop@outage.example", "to": "ann@example.net", "subject": "Hi", "text": "Hello"}
    assert (await http.post("/v1/mail/messages/send", json=message)).status_code == 200

    await proxy.cut()
    down = await http.post("/v1/mail/messages/send", json=message)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "unavailable"

    await proxy.start()
    back = await http.post("/v1/mail/messages/send", json=message)
    assert back.status_code == 200, back.text
    assert back.json()["message"]["status"] == "sent"


@pytest.fixture
async def private_postgres():
    server = await asyncio.to_thread(lambda: PrivatePostgres().create())
    yield server
    await asyncio.to_thread(server.destroy)


async def test_postgresql_stopped_under_concurrent_sends_is_503_and_one_line_a_second(private_postgres, tmp_path):
    """Issue #10, defect 4: a real PostgreSQL stopped for ~3 s under ~50 sends/s. Every answer is
    200 or 503 `unavailable` (with Retry-After), never a 500; the log says the database is unavailable
    at most once a second and shows no traceback; sends succeed again once it is back."""
    admin = "outage-admin"
    env = {
        "ORGMAIL_DATA_DIR": str(tmp_path / "data"),
        "ORGMAIL_DATABASE_URL": private_postgres.url,
        "ORGMAIL_ADMIN_TOKEN": admin,
    }
    server = OrgmailServer(env, tmp_path / "serve.log")
    try:
        await server.start()
        caller = await provision_sender(server, admin_token=admin, domain="outage.example")
        message = {"from": "shop@outage.example", "to": "ann@example.net", "subject": "Hi", "text": "Hello"}
        answers: list[tuple[int, str, str | None]] = []

        async with httpx.AsyncClient(base_url=server.base, headers=caller, timeout=30) as http:

            async def one_send() -> None:
                response = await http.post("/v1/mail/messages/send", json=message)
                code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
                answers.append((response.status_code, code, response.headers.get("retry-after")))

            async def load(seconds: float, per_second: int = 50) -> None:
                sends = []
                for _ in range(int(seconds * per_second)):
                    sends.append(asyncio.create_task(one_send()))
                    await asyncio.sleep(1 / per_second)
                await asyncio.gather(*sends)

            async def outage() -> float:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(private_postgres.stop)
                down_at = asyncio.get_running_loop().time()
                await asyncio.sleep(3.0)
                await asyncio.to_thread(private_postgres.start)
                return asyncio.get_running_loop().time() - down_at

            _, down_for = await asyncio.gather(load(7.0), outage())
            await asyncio.sleep(0.5)
            after = await http.post("/v1/mail/messages/send", json=message)

        statuses = {status for status, _code, _retry in answers}
        assert statuses <= {200, 503}, sorted(set(answers))
        unavailable = [(code, retry) for status, code, retry in answers if status == 503]
        assert unavailable, "the outage was not seen by any send"
        assert all(code == "unavailable" and retry for code, retry in unavailable), set(unavailable)
        assert after.status_code == 200, after.text

        log = server.log()
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
        outage_lines = [line for line in log.splitlines() if "database unavailable" in line]
        assert 1 <= len(outage_lines) <= int(down_for) + 2, outage_lines
    finally:
        server.stop()
