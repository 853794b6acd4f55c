"""TXT look-ups against a real DNS server on loopback: joined strings, no record, TCP, failures."""

from __future__ import annotations

import time
import uuid

import pytest

from orgmail.config import load_settings
from orgmail.mail.dns import DnsLookupFailed, DnsTxtResolver
from tests.dns_server import unused_udp_port


def _fresh_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}.example.net"


@pytest.fixture
def resolver(dns_server) -> DnsTxtResolver:
    return DnsTxtResolver([dns_server.nameserver], timeout_seconds=2)


async def test_long_record_comes_back_as_one_value(dns_server, resolver):
    name = _fresh_name()
    value = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.publish(name, value)
    assert await resolver.lookup_txt(name) == [value]


async def test_every_record_at_a_name_is_returned(dns_server, resolver):
    name = _fresh_name()
    dns_server.publish(name, "v=spf1 mx ~all", "orgmail-verification=abc")
    assert sorted(await resolver.lookup_txt(name)) == ["orgmail-verification=abc", "v=spf1 mx ~all"]


async def test_unknown_name_and_name_without_txt_are_empty(dns_server, resolver):
    assert await resolver.lookup_txt(_fresh_name()) == []
    exists = _fresh_name()
    dns_server.replace(exists)  # the name exists, with no TXT records (NOERROR, no answer)
    assert await resolver.lookup_txt(exists) == []


async def test_truncated_udp_answer_is_retried_over_tcp(dns_server, resolver):
    name = _fresh_name()
    value = "x" * 700
    dns_server.publish(name, value)
    dns_server.udp_payload_limit = 200
    try:
        assert await resolver.lookup_txt(name) == [value]
    finally:
        dns_server.udp_payload_limit = None
    transports = [transport for transport, qname, _ in dns_server.queries if qname == name + "."]
    assert transports == ["udp", "tcp"]


async def test_servfail_is_a_failed_lookup(dns_server, resolver):
    name = _fresh_name()
    dns_server.fail(name)
    with pytest.raises(DnsLookupFailed) as caught:
        await resolver.lookup_txt(name)
    assert caught.value.name == name


async def test_silent_server_times_out_as_a_failed_lookup(dns_server):
    name = _fresh_name()
    dns_server.ignore(name)
    quick = DnsTxtResolver([dns_server.nameserver], timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(DnsLookupFailed, match="did not answer"):
        await quick.lookup_txt(name)
    assert time.monotonic() - started < 3


async def test_nobody_listening_is_a_failed_lookup():
    nowhere = DnsTxtResolver([("127.0.0.1", unused_udp_port())], timeout_seconds=1)
    with pytest.raises(DnsLookupFailed):
        await nowhere.lookup_txt("example.net")


def test_nameservers_must_be_ip_addresses():
    with pytest.raises(ValueError, match="IP address"):
        DnsTxtResolver([("dns.example.net", 53)])


def test_nameserver_setting_accepts_ports_and_ipv6(tmp_path):
    settings = load_settings(
        {
            "ORGMAIL_DATA_DIR": str(tmp_path),
            "ORGMAIL_SECRET_KEY": "x",
            "ORGMAIL_DNS_NAMESERVERS": "127.0.0.1:5353, 10.0.0.2,[::1]:5300,::1",
            "ORGMAIL_DNS_TIMEOUT": "2.5",
        }
    )
    assert settings.dns_nameservers == (("127.0.0.1", 5353), ("10.0.0.2", 53), ("::1", 5300), ("::1", 53))
    assert settings.dns_timeout_seconds == 2.5
