"""Request-size limit as a pure ASGI middleware: reads no further than the limit, then answers 413."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgmail.api.errors import error_response
from orgmail.errors import MessageTooLarge


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = MessageTooLarge(
            f"The request body is larger than the limit of {self.max_bytes} bytes.",
            details={"limitBytes": self.max_bytes},
        )
        # The rest of the body is never read: the connection cannot carry another request after it.
        await error_response(too_large, {"Connection": "close"})(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
        # Every call is a small JSON document, so buffer it here (up to the limit) and replay it:
        # the app never sees a body past the limit, and the reader stops at the limit.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and not any(name == b"content-type" for name, _ in scope.get("headers", ())):
            # Every call takes JSON: `curl -d '{…}'` without a Content-Type still means JSON.
            scope = {**scope, "headers": [*scope.get("headers", ()), (b"content-type", b"application/json")]}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
