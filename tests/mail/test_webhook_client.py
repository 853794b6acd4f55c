"""The webhook client (aiohttp) against a real endpoint on loopback: what a POST carries, and the
address forms it must refuse before any connection is made."""

from __future__ import annotations

import socket

import pytest
from standardwebhooks import Webhook

from orgmail import __version__
from orgmail.mail.webhook_client import WebhookClient, signer_for

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def _post(url: str, *, allow_private: bool, body: str = '{"type":"webhook.test"}'):
    client = WebhookClient(allow_private=allow_private, timeout_seconds=5)
    try:
        return await client.post(url, signer=signer_for(SECRET), event_id="evt_01TEST", body=body)
    finally:
        await client.close()


async def test_a_post_carries_the_body_its_signature_and_who_sent_it(receiver):
    receiver.expect("/hook", SECRET)
    body = '{"type":"webhook.test","createdAt":"2026-12-02T10:00:00Z","data":{"webhookId":"whk_1"}}'
    result = await _post(receiver.url("/hook"), allow_private=True, body=body)
    assert result.delivered and result.status_code == 200
    [post] = receiver.posts_to("/hook")
    assert post.verified and post.body == body.encode()
    assert post.headers["content-type"] == "application/json"
    assert post.headers["user-agent"] == f"orgmail/{__version__} (webhooks)"
    Webhook(SECRET).verify(post.body, post.headers)  # the published verifier, once more, by hand


async def test_cookies_an_endpoint_sets_are_never_sent_back(receiver):
    """Webhooks of different orgs can share a host: one org's endpoint must not see another's cookies."""
    receiver.expect("/hook", SECRET)
    receiver.endpoints["/hook"].headers["Set-Cookie"] = "session=tenant-a; Path=/"
    client = WebhookClient(allow_private=True, timeout_seconds=5)
    try:
        for _ in range(2):
            url = f"http://localhost:{receiver.port}/hook"  # a name: cookie jars keep no cookies of IP literals
            assert (await client.post(url, signer=signer_for(SECRET), event_id="evt_01", body="{}")).delivered
    finally:
        await client.close()
    assert [post.headers.get("cookie") for post in receiver.posts_to("/hook")] == [None, None]


@pytest.mark.parametrize(
    "host, reason",
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1 is a loopback address"),  # IPv4-mapped: reaches 127.0.0.1
        ("[64:ff9b::a00:1]", "64:ff9b::a00:1 is a private address"),  # NAT64 of 10.0.0.1
        ("localhost.", "localhost. is a loopback name"),
        ("0x7f.0.0.1", "0x7f.0.0.1 resolves to 127.0.0.1, a loopback address"),  # through the resolver
    ],
)
async def test_refused_literals_and_names_are_never_connected_to(receiver, host, reason):
    receiver.expect("/hook", SECRET)
    result = await _post(f"http://{host}:{receiver.port}/hook", allow_private=False)
    assert result.error == f"refused: {reason}" and result.status_code is None
    assert receiver.connections == 0


@pytest.mark.parametrize("host", ["2130706433", "127.1"])
async def test_legacy_numeric_forms_of_an_address_are_refused(receiver, host):
    """Forms the C library would map onto 127.0.0.1 are not addresses the rule can check."""
    receiver.expect("/hook", SECRET)
    for allow_private in (False, True):
        result = await _post(f"http://{host}:{receiver.port}/hook", allow_private=allow_private)
        assert not result.delivered and "not a canonical IPv4 address" in (result.error or "")
    assert receiver.connections == 0


async def test_a_closed_port_is_an_error_that_names_the_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: the connect is refused
        result = await _post(f"http://127.0.0.1:{port}/hook", allow_private=True)
    assert result.status_code is None
    assert result.error is not None and result.error.startswith("ClientConnectorError: Connect call failed")
