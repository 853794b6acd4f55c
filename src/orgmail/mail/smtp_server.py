"""What orgmail's two SMTP listeners (inbound reports, submission) share: connections that keep
themselves in their listener's set of sessions, and a stop that lets transactions under way end.

Both serve aiosmtpd's `SMTP` protocol from the service's own event loop (`loop.create_server`, bound
with SO_REUSEPORT so every worker of `orgmail serve --workers N` binds the port).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
STOP_GRACE_SECONDS = 5.0


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class TrackedSMTP(SMTP):
    """aiosmtpd's server, each connection kept in `sessions` while it is open."""

    def __init__(self, handler: Any, *, sessions: set[TrackedSMTP], **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None

    def hang_up(self, reply: str = SHUTTING_DOWN) -> None:
        if isinstance(self.transport, asyncio.WriteTransport) and not self.transport.is_closing():
            self.transport.write(reply.encode() + b"\r\n")
            self.transport.close()


async def serve(
    protocol: Callable[[], SMTP], address: tuple[str, int], *, implicit_tls: ssl.SSLContext | None = None
) -> asyncio.Server:
    """A server for `protocol` on `address` (TLS from the first byte with `implicit_tls`)."""
    host, port = address
    return await asyncio.get_running_loop().create_server(protocol, host, port, ssl=implicit_tls, reuse_port=True)


class Listener:
    """Running servers: `await listener.stop()` ends them. `working` holds the tasks of messages being
    handled after their final dot (stored, relayed), which a stop waits for too."""

    def __init__(self, servers: Sequence[asyncio.Server], sessions: set[TrackedSMTP], working: set[asyncio.Task]):
        self._servers = list(servers)
        self._sessions = sessions
        self._working = working
        self.addresses: list[tuple[str, int]] = [
            (server.sockets[0].getsockname()[0], server.sockets[0].getsockname()[1]) for server in self._servers
        ]  # the ports chosen, when asked for port 0

    @property
    def address(self) -> tuple[str, int]:
        return self.addresses[0]

    async def stop(self, *, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop accepting; give the transactions under way up to `grace_seconds` to end, then say 421
        to every client still connected. A message being handled is finished (or cancelled, if it
        takes longer than the grace again): it was not answered 250 either way."""
        for server in self._servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._busy() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for session in list(self._sessions):
            session.hang_up()
        if self._working:
            _done, late = await asyncio.wait(set(self._working), timeout=grace_seconds)
            for task in late:
                task.cancel()
        for server in self._servers:
            await server.wait_closed()

    def _busy(self) -> bool:
        return bool(self._working) or any(session.in_transaction for session in self._sessions)
