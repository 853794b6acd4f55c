"""Webhook POSTs: one httpx client, Standard Webhooks signatures, and the address rule (SSRF).

Every connection is checked where it is made: the network backend under httpx resolves the host
itself (the system resolver), refuses loopback, private, link-local, multicast, unspecified and
reserved addresses unless private destinations are allowed, and connects to an address it checked,
so a name that resolves to a public address at the check and to 127.0.0.1 at the connect (DNS
rebinding) cannot slip between the two. TLS still verifies the certificate for the URL's host name.

httpx takes no network backend of its own; its connection pool does, so `_GuardedTransport` replaces
the pool it builds: the one place here that touches a library's internals.

Results are values: a refused address, a timeout, a 500 or a redirect is a `DeliveryResult` with an
`error`, never an exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from standardwebhooks import Webhook

from orgmail import __version__

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_MAX_ERROR_BODY = 200  # characters of a refusing endpoint's answer kept in the delivery log


class DestinationRefused(Exception):
    """The host is, or resolves to, an address webhooks may not reach."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One POST: the endpoint's status (None when there was no answer), how long it took, and what
    went wrong (None when it answered 2xx)."""

    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), which is what gets reached."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IpAddress) -> str | None:
    """Why webhooks may not reach `address` ("a loopback address"), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := address_refusal(embedded)):
            return reason
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),  # e.g. 100.64.0.0/10, shared address space
    )
    return next((reason for refused, reason in checks if refused), None)


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_refusal(host: str) -> str | None:
    """Names that are loopback by definition (RFC 6761 §6.3), whatever a resolver says."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback name"
    return None


async def resolve(host: str, port: int) -> list[IpAddress]:
    """The host's addresses, from the system resolver (`getaddrinfo`: /etc/hosts included)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: dict[IpAddress, None] = {}
    for _family, _type, _proto, _canonname, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"); the address is what is checked.
        addresses[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(addresses)


def _refusal_among(host: str, addresses: Iterable[IpAddress]) -> str | None:
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            return f"{host} is {reason}" if _literal(host) == address else f"{host} resolves to {address}, {reason}"
    return None


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as a webhook endpoint before any look-up (None: nothing)."""
    try:
        parsed = httpx.URL(url)
        parsed.host, parsed.raw_host.decode("ascii")  # an IDNA label httpx cannot encode fails here
    except (httpx.InvalidURL, ValueError, UnicodeError):  # idna.IDNAError is a UnicodeError
        return "not a valid URL"
    if not parsed.scheme:
        return "not an absolute http(s) URL"
    if parsed.scheme not in ("http", "https"):
        return "only http and https URLs are accepted"
    if not parsed.host:
        return "the URL has no host"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "the port is not a number from 1 to 65535"
    return None


async def destination_problem(url: str, *, allow_private: bool, timeout_seconds: float = 5.0) -> str | None:
    """Why `url`'s host may not be reached (None: it may, or it does not resolve now: every
    delivery checks again). `url` must have passed `url_problem`."""
    if allow_private:
        return None
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded by httpx, as it will be connected to
    if (reason := host_refusal(host)) is not None:
        return reason
    literal = _literal(host)
    if literal is not None:
        return _refusal_among(host, [literal])
    try:
        async with asyncio.timeout(timeout_seconds):
            addresses = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    except (OSError, UnicodeError, TimeoutError):
        return None
    return _refusal_among(host, addresses)


class _GuardedBackend(AsyncNetworkBackend):
    """httpcore's default backend, behind the address rule: it resolves, checks, then connects to
    a checked address (each in turn, as the resolver ordered them)."""

    def __init__(self, *, allow_private: bool):
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        if self.allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        if (reason := host_refusal(host)) is not None:
            raise DestinationRefused(f"refused: {reason}")
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from exc
        if (reason := _refusal_among(host, addresses)) is not None:
            raise DestinationRefused(f"refused: {reason}")
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> AsyncNetworkStream:
        raise DestinationRefused("refused: webhooks are not delivered to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool, limits: httpx.Limits):
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow_private=allow_private),
        )


def signature_headers(*, secret: str, event_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, timestamp, body),
    }


class WebhookClient:
    """POSTs signed events over one pool of keep-alive connections (reused per endpoint).

    A POST counts only if the endpoint answers 2xx within `timeout_seconds`, the whole exchange
    included; redirects are not followed (a 3xx is an answer that did not take the event).
    """

    def __init__(self, *, allow_private: bool = False, timeout_seconds: float = 10.0, max_connections: int = 100):
        self.timeout_seconds = timeout_seconds
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=30.0
        )
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(allow_private=allow_private, limits=limits),
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": f"orgmail/{__version__} (webhooks)", "content-type": "application/json"},
        )

    async def post(
        self, url: str, *, secret: str, event_id: str, body: str, timestamp: datetime | None = None
    ) -> DeliveryResult:
        headers = signature_headers(
            secret=secret, event_id=event_id, timestamp=timestamp or datetime.now(UTC), body=body
        )
        started = time.perf_counter()

        def result(status_code: int | None, error: str | None) -> DeliveryResult:
            return DeliveryResult(status_code, round((time.perf_counter() - started) * 1000), error)

        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self._client.stream("POST", url, content=body.encode(), headers=headers) as response:
                    answer = await _beginning(response)
        except DestinationRefused as exc:
            return result(None, str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return result(None, f"no answer within {self.timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return result(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except OSError as exc:
            return result(None, f"{type(exc).__name__}: {exc.strerror or exc}")
        status = response.status_code
        if 200 <= status < 300:
            return result(status, None)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            return result(status, f"answered {status} (a redirect to {location[:200]!r}); redirects are not followed")
        return result(status, f"answered {status}" + (f": {answer}" if answer else ""))

    async def close(self) -> None:
        await self._client.aclose()


async def _beginning(response: httpx.Response) -> str:
    """The start of the answer's body, printable, for the delivery log; the rest is read and
    dropped up to a bound (so the connection can be reused), beyond it the connection is closed."""
    kept, read = b"", 0
    async for chunk in response.aiter_bytes():
        if len(kept) < 1024:
            kept += chunk[: 1024 - len(kept)]
        read += len(chunk)
        if read > 65536:
            break
    text = kept.decode("utf-8", "replace")
    printable = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return " ".join(printable.split())[:_MAX_ERROR_BODY]
