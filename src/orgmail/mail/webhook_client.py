"""Webhook POSTs: one aiohttp client session, Standard Webhooks signatures, and the address rule (SSRF).

Every connection is checked where it is made: host names reach aiohttp's connector only through
`_GuardedResolver`, which resolves them (the system resolver), refuses loopback, private,
link-local, multicast, unspecified and reserved addresses unless private destinations are allowed,
and hands the connector the addresses it checked, so a name that resolves to a public address at
the check and to 127.0.0.1 at the connect (DNS rebinding) cannot slip between the two. IP literals
skip resolvers, so `post` checks those itself. TLS still verifies the certificate for the URL's host.

Why aiohttp and not httpx (DESIGN.md §7 named httpx): a POST to a keep-alive endpoint costs httpx
about 1.2 ms of CPU here (anyio, h11 in pure Python, a pool that scans every connection per
request) and aiohttp 0.13-0.19 ms (llhttp in C); delivery shares its cores with sending, and at
that difference webhooks halved the send rate (README, Performance).

Results are values: a refused address, a timeout, a 500 or a redirect is a `DeliveryResult` with an
`error`, never an exception.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks import Webhook
from yarl import URL

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


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> URL | None:
    """The URL as aiohttp will use it, or None if it cannot be (IDNA included: yarl encodes it);
    worked out once per URL, since every POST checks it again."""
    try:
        parsed = URL(url)  # encodes the host (IDNA)
        _ = parsed.host  # and decodes it: a label that is not valid punycode ("xn--zz") fails here
    except (ValueError, UnicodeError, TypeError):  # idna.IDNAError is a UnicodeError
        return None
    return parsed


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as a webhook endpoint before any look-up (None: nothing)."""
    parsed = _parsed(url)
    if parsed is None:
        return "not a valid URL"
    if not parsed.scheme:
        return "not an absolute http(s) URL"
    if parsed.scheme not in ("http", "https"):
        return "only http and https URLs are accepted"
    if not parsed.raw_host:
        return "the URL has no host"
    if parsed.explicit_port is not None and not 0 < parsed.explicit_port < 65536:
        return "the port is not a number from 1 to 65535"
    return None


def _literal_refusal(host: str, *, allow_private: bool) -> str | None:
    """Why a host that needs no look-up may not be reached: a loopback name, or a refused literal."""
    if allow_private:
        return None
    if (reason := host_refusal(host)) is not None:
        return reason
    literal = _literal(host)
    return _refusal_among(host, [literal]) if literal is not None else None


async def destination_problem(url: str, *, allow_private: bool, timeout_seconds: float = 5.0) -> str | None:
    """Why `url`'s host may not be reached (None: it may, or it does not resolve now: every
    delivery checks again). `url` must have passed `url_problem`."""
    if allow_private:
        return None
    parsed = URL(url)
    host = parsed.raw_host or ""  # IDNA-encoded by yarl, as it will be connected to
    if (reason := _literal_refusal(host, allow_private=False)) is not None:
        return reason
    if _literal(host) is not None:
        return None  # a public address
    try:
        async with asyncio.timeout(timeout_seconds):
            addresses = await resolve(host, parsed.port or 80)
    except (OSError, UnicodeError, TimeoutError):
        return None
    return _refusal_among(host, addresses)


class _GuardedResolver(AbstractResolver):
    """The system resolver behind the address rule: aiohttp connects only to the addresses this
    returns, so every one of them has been checked (and its DNS cache keeps only checked ones).
    IP literals never reach a resolver: `WebhookClient.post` checks those itself."""

    def __init__(self, *, allow_private: bool):
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        if not self.allow_private and (reason := host_refusal(host)) is not None:
            raise DestinationRefused(f"refused: {reason}")
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from exc
        if not self.allow_private and (reason := _refusal_among(host, addresses)) is not None:
            raise DestinationRefused(f"refused: {reason}")
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


Signer = Webhook  # standardwebhooks' signer for one secret


def signer_for(secret: str) -> Signer:
    """What signs for one secret (`whsec_…`): make it once per secret and keep it, since decoding
    the secret costs about as much as a signature."""
    return Webhook(secret)


def signature_headers(*, signer: Signer, event_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signer.sign(event_id, timestamp, body),
    }


class WebhookClient:
    """POSTs signed events over one pool of keep-alive connections (reused per endpoint).

    A POST counts only if the endpoint answers 2xx within `timeout_seconds`, the whole exchange
    included; redirects are not followed (a 3xx is an answer that did not take the event).
    """

    def __init__(self, *, allow_private: bool = False, timeout_seconds: float = 10.0, max_connections: int = 100):
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(allow_private=self.allow_private),
                limit=self.max_connections,
                keepalive_timeout=30.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No cookies: endpoints of different orgs can share a host, and none may see another's.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),  # the whole exchange is bounded in `post`
                trust_env=False,
                headers={"user-agent": f"orgmail/{__version__} (webhooks)", "content-type": "application/json"},
            )
        return self._session

    async def post(
        self, url: str, *, signer: Signer, event_id: str, body: str, timestamp: datetime | None = None
    ) -> DeliveryResult:
        """POST `body` to `url`, signed by `signer` (see `signer_for`)."""
        headers = signature_headers(
            signer=signer, event_id=event_id, timestamp=timestamp or datetime.now(UTC), body=body
        )
        started = time.perf_counter()

        def result(status_code: int | None, error: str | None) -> DeliveryResult:
            return DeliveryResult(status_code, round((time.perf_counter() - started) * 1000), error)

        problem = url_problem(url)  # checked at create; a row edited since is not sent
        parsed = _parsed(url)  # None only with a problem
        if problem is not None or parsed is None:
            return result(None, f"refused: {problem}")
        if (reason := _literal_refusal(parsed.raw_host or "", allow_private=self.allow_private)) is not None:
            return result(None, f"refused: {reason}")
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self._client().post(
                    parsed, data=body.encode(), headers=headers, allow_redirects=False
                ) as response:
                    answer = await _beginning(response)
        except DestinationRefused as exc:
            return result(None, str(exc))
        except TimeoutError:
            return result(None, f"no answer within {self.timeout_seconds:g} s")
        except aiohttp.ClientConnectorError as exc:
            return result(None, f"{type(exc).__name__}: {_cause(exc)}")
        except aiohttp.ClientError as exc:
            return result(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except OSError as exc:
            return result(None, f"{type(exc).__name__}: {exc.strerror or exc}")
        status = response.status
        if 200 <= status < 300:
            return result(status, None)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            return result(status, f"answered {status} (a redirect to {location[:200]!r}); redirects are not followed")
        return result(status, f"answered {status}" + (f": {answer}" if answer else ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _cause(exc: aiohttp.ClientConnectorError) -> str:
    """What the connect failed on, without aiohttp's framing ("Cannot connect to host …")."""
    inner = exc.os_error
    return inner.strerror or str(inner) or type(inner).__name__


async def _beginning(response: aiohttp.ClientResponse) -> str:
    """The start of the answer's body, printable, for the delivery log; the rest is read and
    dropped up to a bound (so the connection can be reused), beyond it the connection is closed."""
    kept, read = b"", 0
    async for chunk in response.content.iter_chunked(16384):
        if len(kept) < 1024:
            kept += chunk[: 1024 - len(kept)]
        read += len(chunk)
        if read > 65536:
            response.close()
            break
    text = kept.decode("utf-8", "replace")
    printable = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return " ".join(printable.split())[:_MAX_ERROR_BODY]
