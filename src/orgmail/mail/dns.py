"""TXT look-ups for domain verification, with dnspython's async resolver.

The nameservers are configurable (`ORGMAIL_DNS_NAMESERVERS`) so that tests and air-gapped deployments
can point at their own server; without them the system resolver (/etc/resolv.conf) answers. There is
no cache here on purpose: a user who just published a record and clicks "verify" must see it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

log = logging.getLogger("orgmail.dns")

# A single attempt against one nameserver; the whole look-up is bounded by the resolver's lifetime.
_ATTEMPT_SECONDS = 2.0


class DnsLookupFailed(Exception):
    """DNS itself failed (no nameservers, a timeout, SERVFAIL, refused): not the same as "no record"."""

    def __init__(self, message: str, *, name: str | None = None):
        super().__init__(message)
        self.name = name


class TxtResolver(Protocol):
    async def lookup_txt(self, name: str) -> list[str]:
        """Every TXT record at `name`, each with its character-strings joined; [] if there is none.

        Raises `DnsLookupFailed` when DNS itself fails (timeout, SERVFAIL), which is not the same thing
        as "no such record".
        """
        ...


def join_txt_strings(strings: Sequence[bytes]) -> str:
    """One TXT record's value: a record longer than 255 bytes is published as several strings, and
    RFC 6376 §3.6.2.2 says they are concatenated without anything in between."""
    return b"".join(strings).decode("utf-8", errors="replace")


class DnsTxtResolver:
    """`TxtResolver` over dnspython (UDP, falling back to TCP when an answer is truncated)."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] = (), *, timeout_seconds: float = 5.0):
        self._timeout_seconds = timeout_seconds
        self._resolver: dns.asyncresolver.Resolver | None
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [_nameserver(host, port) for host, port in nameservers]
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                # Start anyway (sending does not need DNS); verify answers dns_unavailable until fixed.
                log.warning("no system DNS configuration and ORGMAIL_DNS_NAMESERVERS is unset")
                self._resolver = None
        if self._resolver is not None:
            self._resolver.lifetime = timeout_seconds
            self._resolver.timeout = min(_ATTEMPT_SECONDS, timeout_seconds)
            self._resolver.cache = None

    async def lookup_txt(self, name: str) -> list[str]:
        if self._resolver is None:
            raise DnsLookupFailed("No DNS nameservers are configured; set ORGMAIL_DNS_NAMESERVERS.")
        try:
            qname = dns.name.from_text(name)  # absolute: never apply a search domain to a record name
        except dns.exception.DNSException:
            return []  # a name DNS cannot hold has no records
        try:
            answer = await self._resolver.resolve(qname, dns.rdatatype.TXT, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout:
            log.warning("DNS look-up of %s timed out", name)
            raise DnsLookupFailed(
                f"DNS did not answer for {name} within {self._timeout_seconds:g} s; try again.",
                name=name,
            ) from None
        except (dns.exception.DNSException, OSError) as exc:
            log.warning("DNS look-up of %s failed: %s", name, exc)
            raise DnsLookupFailed(
                f"DNS could not answer for {name} (the nameservers failed or refused); try again.",
                name=name,
            ) from None
        if answer.rrset is None:  # the name exists but has no TXT records
            return []
        return [join_txt_strings(rdata.strings) for rdata in answer.rrset]


def _nameserver(host: str, port: int) -> dns.nameserver.Do53Nameserver:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"DNS nameserver {host!r} must be an IP address (ORGMAIL_DNS_NAMESERVERS)") from None
    return dns.nameserver.Do53Nameserver(host, port)
