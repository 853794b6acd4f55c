"""SIGTERM: `orgmail serve` stops accepting, finishes the sends in flight, then exits cleanly.

A real `orgmail serve` process, a real SMTP relay that takes its time over DATA, a real signal.
"""

from __future__ import annotations

import asyncio
import signal
import socket

import httpx
import pytest

from tests.processes import OrgmailServer, provision_sender, wait_for
from tests.smtp_relay import SmtpTestRelay

ADMIN = "shutdown-admin"


@pytest.mark.parametrize("options", [(), ("--workers", "2")], ids=["one process", "two workers"])
async def test_sigterm_finishes_the_send_in_flight_then_exits(tmp_path, options):
    relay = SmtpTestRelay()
    await relay.start()
    relay.behaviour.delay_data = 2.0  # the send is still in flight when the signal arrives
    env = {"ORGMAIL_DATA_DIR": str(tmp_path), "ORGMAIL_ADMIN_TOKEN": ADMIN, "ORGMAIL_RELAY_URL": relay.url}
    server = OrgmailServer(env, tmp_path / "serve.log", options=options)
    try:
        await server.start()
        caller = await provision_sender(server, admin_token=ADMIN, domain="shutdown.example.com")
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            message = {
                "from": "shop@shutdown.example.com",
                "to": "customer@example.net",
                "subject": "Still delivered",
                "text": "Sent while the service stops.",
            }
            send = asyncio.create_task(http.post("/v1/mail/messages/send", headers=caller, json=message))
            await wait_for(lambda: bool(relay.received) or relay.sessions > 0, timeout=10, what="the relay session")
            await asyncio.sleep(0.3)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)

            response = await send
            assert response.status_code == 200, response.text
            assert response.json()["message"]["status"] == "sent"
        assert len(relay.received) == 1
        returncode = await asyncio.to_thread(server.process.wait, 40)
        # uvicorn re-raises the signal once it has shut down cleanly, so the status says "SIGTERM".
        assert returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()
        with socket.socket() as probe:  # no longer accepting
            assert probe.connect_ex(("127.0.0.1", server.port)) != 0
    finally:
        server.stop()
        await relay.stop()
