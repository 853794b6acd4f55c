"""A real webhook endpoint for the tests: HTTP/1.1 on loopback (asyncio streams, keep-alive), which
verifies every POST's signature with the published Standard Webhooks library, as a receiver would.

Each path is one endpoint with its own secret. An endpoint can be told to answer the next requests
with given statuses (a 3xx comes with a Location, to show that it is not followed), to stall, or to
send headers of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

_REASONS = {200: "OK", 204: "No Content", 302: "Found", 401: "Unauthorized", 404: "Not Found", 500: "Server Error"}


@dataclass
class ReceivedPost:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    connection: int  # which TCP connection carried it: 1, 2, …
    verified: bool
    status: int  # what the endpoint answered

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Endpoint:
    secret: str
    answers: deque[int] = field(default_factory=deque)  # statuses for the next requests; then 200
    stall: bool = False  # read the request, never answer
    delay: float = 0.0  # seconds before each answer
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer (e.g. Set-Cookie)


class WebhookReceiver:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.posts: list[ReceivedPost] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._handlers: set[asyncio.Task] = set()

    async def start(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, secret: str, *answers: int) -> None:
        """Serve `path` as an endpoint with this secret, answering `answers` first, then 200."""
        self.endpoints[path] = Endpoint(secret, deque(answers))

    def posts_to(self, path: str) -> list[ReceivedPost]:
        return [post for post in self.posts if post.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 15.0) -> list[ReceivedPost]:
        """The first `count` POSTs to `path`, once they have arrived."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.posts_to(path)) >= count)
        return self.posts_to(path)[:count]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._one_request(reader, writer, connection):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        _method, target, _version = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        endpoint = self.endpoints.get(target)
        verified = False
        if endpoint is None:
            status = 404
        else:
            try:
                Webhook(endpoint.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                pass
            status = endpoint.answers.popleft() if endpoint.answers else 200
            if not verified:
                status = 401
        async with self._arrived:
            self.posts.append(ReceivedPost(target, headers, body, connection, verified, status))
            self._arrived.notify_all()
        if endpoint is not None and (endpoint.stall or endpoint.delay):
            await asyncio.sleep(3600 if endpoint.stall else endpoint.delay)
        answer = f"status {status}".encode()
        extra = "Location: /elsewhere\r\n" if 300 <= status < 400 else ""
        extra += "".join(f"{name}: {value}\r\n" for name, value in (endpoint.headers if endpoint else {}).items())
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(answer)}\r\n{extra}\r\n".encode()
            + answer
        )
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A receiver for one test (the fixture of every test that takes `receiver`)."""
    server = await WebhookReceiver().start()
    yield server
    await server.stop()
