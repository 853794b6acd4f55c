"""SIGTERM: `orgmail serve` stops accepting, finishes the sends in flight, then exits cleanly.

A real `orgmail serve` process, a real SMTP relay that takes its time over DATA, a real signal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.smtp_relay import SmtpTestRelay

BIN = Path(sys.executable).parent
ADMIN = "shutdown-admin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_until_up(base: str, process: subprocess.Popen) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError("orgmail serve did not start")


async def test_sigterm_finishes_the_send_in_flight_then_exits(tmp_path):
    relay = SmtpTestRelay()
    await relay.start()
    relay.behaviour.delay_data = 2.0  # the send is still in flight when the signal arrives
    port = _free_port()
    env = {
        **os.environ,
        "ORGMAIL_DATA_DIR": str(tmp_path),
        "ORGMAIL_ADMIN_TOKEN": ADMIN,
        "ORGMAIL_RELAY_URL": relay.url,
    }
    process = subprocess.Popen(
        [str(BIN / "orgmail"), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_up(base, process)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            org = (await http.post("/v1/admin/orgs/create", json={"name": "Shutdown"}, headers=admin)).json()["org"]
            key = (await http.post("/v1/admin/keys/create", json={"orgId": org["id"]}, headers=admin)).json()["key"]
            caller = {"Authorization": f"Bearer {key}"}
            domain = (
                await http.post("/v1/mail/domains/add", json={"name": "shutdown.example.com"}, headers=caller)
            ).json()["domain"]
            marked = subprocess.run(
                [str(BIN / "orgmail"), "domain", "mark-verified", domain["id"], "--org", org["id"]],
                env=env,
                capture_output=True,
                text=True,
            )
            assert marked.returncode == 0, marked.stderr

            send = asyncio.create_task(
                http.post(
                    "/v1/mail/messages/send",
                    headers=caller,
                    json={
                        "from": "shop@shutdown.example.com",
                        "to": "customer@example.net",
                        "subject": "Still delivered",
                        "text": "Sent while the service stops.",
                    },
                )
            )
            while not relay.received and relay.sessions == 0:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)

            response = await send
            assert response.status_code == 200, response.text
            assert response.json()["message"]["status"] == "sent"
        assert len(relay.received) == 1
        returncode = await asyncio.to_thread(process.wait, 40)
        # uvicorn re-raises the signal once it has shut down cleanly, so the status says "SIGTERM".
        assert returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in process.stderr.read().decode()
        with socket.socket() as probe:  # no longer accepting
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if process.poll() is None:
            process.kill()
        await relay.stop()
