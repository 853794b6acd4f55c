"""/v1/mail/webhooks/*: the secret shown once, event types, the address rule (SSRF), tenancy, test
events and the delivery log, and a real send delivered as a verified `message.sent` POST.

Two apps of this module's own: `guarded_app` on the session's database, with private destinations
refused (the default), and `private_app`, which allows them (the receiver is on loopback) and relays
to the test SMTP server, on a database of its own so that no other app's dispatcher shares its queue.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI

from orgmail.api import webhooks as webhooks_api
from orgmail.app import create_app
from orgmail.core import webhook_dispatcher
from orgmail.core.webhooks import EVENT_TYPES
from tests.conftest import Tenant, make_sender, make_tenant
from tests.fresh_database import fresh_database

ALL_TYPES = [
    "message.sent",
    "message.failed",
    "message.suppressed",
    "message.delivered",
    "message.deferred",
    "message.bounced",
    "message.complained",
    "suppression.created",
    "webhook.test",
]


def _with_webhooks(application: FastAPI) -> FastAPI:
    """The webhooks router, unless the app already has it."""
    if not any(getattr(route, "path", "") == "/v1/mail/webhooks/create" for route in application.routes):
        application.include_router(webhooks_api.router)
    return application


@pytest.fixture(scope="module")
async def guarded_app(settings) -> AsyncIterator[FastAPI]:
    application = _with_webhooks(create_app(replace(settings, webhook_allow_private=False)))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def private_database(database_url, tmp_path_factory) -> AsyncIterator[str]:
    async with fresh_database(database_url, tmp_path_factory.mktemp("hooks-api"), "hooks_api") as url:
        yield url


@pytest.fixture(scope="module")
async def private_app(settings, private_database, smtp_relay_server) -> AsyncIterator[FastAPI]:
    changed = replace(
        settings,
        database_url=private_database,
        webhook_allow_private=True,
        relay_url=smtp_relay_server.url,
        relay_timeout_seconds=5.0,
    )
    application = _with_webhooks(create_app(changed))
    async with application.router.lifespan_context(application):
        yield application


async def _client(application: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://orgmail.test")


@pytest.fixture
async def guarded(guarded_app) -> AsyncIterator[Tenant]:
    async with await _client(guarded_app) as client:
        yield await make_tenant(guarded_app, client, "Guarded")


@pytest.fixture
async def private_http(private_app) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(private_app) as client:
        yield client


@pytest.fixture
async def owner(private_app, private_http) -> Tenant:
    return await make_tenant(private_app, private_http, "Owner")


@pytest.fixture
async def stranger(private_app, private_http) -> Tenant:
    return await make_tenant(private_app, private_http, "Stranger")


@pytest.fixture
async def dispatcher(private_app) -> AsyncIterator[webhook_dispatcher.Dispatcher]:
    handle = await webhook_dispatcher.start(private_app.state, event_data=webhooks_api.EVENT_DATA, idle_seconds=0.05)
    yield handle
    await handle.stop()


async def _create(tenant: Tenant, url: str, **fields) -> dict:
    return await tenant.ok("/v1/mail/webhooks/create", {"url": url, **fields})


# --- create, get, list, delete ---------------------------------------------------------------------
async def test_create_returns_the_secret_once(owner):
    created = await _create(owner, "http://127.0.0.1:9/hook", description="CRM")
    assert set(created) == {"webhook", "secret"}
    secret, webhook = created["secret"], created["webhook"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert webhook["id"].startswith("whk_") and webhook["orgId"] == owner.org_id
    assert webhook["url"] == "http://127.0.0.1:9/hook" and webhook["description"] == "CRM"
    assert webhook["enabled"] is True and webhook["createdAt"].endswith("Z")
    got = (await owner.ok("/v1/mail/webhooks/get", {"id": webhook["id"]}))["webhook"]
    assert got == webhook
    listed = await owner.ok("/v1/mail/webhooks/list")
    assert listed["webhooks"][0] == webhook
    for answer in (got, listed):
        assert secret not in json.dumps(answer) and "secret" not in json.dumps(answer)
    again = await _create(owner, "http://127.0.0.1:9/hook")
    assert again["secret"] != secret


async def test_events_default_to_every_type_and_an_explicit_list_is_kept_once_each(owner):
    assert list(EVENT_TYPES) == ALL_TYPES
    everything = (await _create(owner, "http://127.0.0.1:9/all"))["webhook"]
    assert everything["events"] == ALL_TYPES
    some = await _create(
        owner, "http://127.0.0.1:9/some", events=["message.bounced", "webhook.test", "message.bounced"]
    )
    assert some["webhook"]["events"] == ["message.bounced", "webhook.test"]


@pytest.mark.parametrize(
    ("events", "path"),
    [
        (["message.opened"], "events.0"),
        (["message.sent", "sent"], "events.1"),
        ([], "events"),
        ("message.sent", "events"),
    ],
)
async def test_unknown_event_types_are_refused(owner, events, path):
    response = await owner.call("/v1/mail/webhooks/create", {"url": "http://127.0.0.1:9/x", "events": events})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert path in [f["path"] for f in error["details"]["fields"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://localhost:8080/",
        "http://169.254.169.254/latest",
    ],
)
async def test_urls_that_reach_private_addresses_are_refused(guarded, url):
    response = await guarded.call("/v1/mail/webhooks/create", {"url": url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["path"] for f in error["details"]["fields"]] == ["url"]
    assert (await guarded.ok("/v1/mail/webhooks/list"))["webhooks"] == []


@pytest.mark.parametrize(
    "url", ["ftp://files.example.com/", "not a url", "https://", "file:///etc/passwd", "http://xn--zz.com/"]
)
async def test_only_http_and_https_urls_are_accepted(guarded, url):
    response = await guarded.call("/v1/mail/webhooks/create", {"url": url})
    assert response.status_code == 400, response.text
    assert [f["path"] for f in response.json()["error"]["details"]["fields"]] == ["url"]


async def test_a_public_address_is_accepted_with_the_rule_on(guarded):
    created = await _create(guarded, "https://203.0.113.7.example.invalid/hook")  # does not resolve: accepted
    assert created["webhook"]["url"] == "https://203.0.113.7.example.invalid/hook"
    public = await _create(guarded, "https://8.8.8.8/hook", events=["webhook.test"])
    assert public["webhook"]["url"] == "https://8.8.8.8/hook"


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://[::1]/", "http://10.1.2.3/", "http://localhost:8080/"])
async def test_private_addresses_are_accepted_when_the_service_allows_them(owner, url):
    assert (await _create(owner, url))["webhook"]["url"] == url


async def test_list_is_newest_first_with_a_cursor(owner):
    ids = [(await _create(owner, f"http://127.0.0.1:9/{n}"))["webhook"]["id"] for n in range(3)]
    first = await owner.ok("/v1/mail/webhooks/list", {"limit": 2})
    assert [w["id"] for w in first["webhooks"]] == ids[::-1][:2] and first["nextCursor"]
    rest = await owner.ok("/v1/mail/webhooks/list", {"limit": 2, "cursor": first["nextCursor"]})
    assert [w["id"] for w in rest["webhooks"]] == ids[:1] and rest["nextCursor"] is None


async def test_delete_removes_the_webhook(owner):
    webhook_id = (await _create(owner, "http://127.0.0.1:9/bye"))["webhook"]["id"]
    assert await owner.ok("/v1/mail/webhooks/delete", {"id": webhook_id}) == {"ok": True}
    for path, body in (
        ("/v1/mail/webhooks/get", {"id": webhook_id}),
        ("/v1/mail/webhooks/delete", {"id": webhook_id}),
        ("/v1/mail/webhooks/deliveries", {"webhookId": webhook_id}),
    ):
        assert (await owner.call(path, body)).status_code == 404


# --- tenancy ----------------------------------------------------------------------------------------
async def test_other_org_gets_404_for_get_delete_test_and_deliveries(owner, stranger):
    webhook_id = (await _create(owner, "http://127.0.0.1:9/mine"))["webhook"]["id"]
    for path, body in (
        ("/v1/mail/webhooks/get", {"id": webhook_id}),
        ("/v1/mail/webhooks/delete", {"id": webhook_id}),
        ("/v1/mail/webhooks/test", {"id": webhook_id}),
        ("/v1/mail/webhooks/deliveries", {"webhookId": webhook_id}),
    ):
        response = await stranger.call(path, body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await stranger.ok("/v1/mail/webhooks/list"))["webhooks"] == []
    assert (await owner.ok("/v1/mail/webhooks/get", {"id": webhook_id}))["webhook"]["id"] == webhook_id


async def test_another_orgs_id_is_forbidden(owner, stranger):
    response = await stranger.call("/v1/mail/webhooks/list", {"orgId": owner.org_id})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden_org"


# --- test events and the delivery log -------------------------------------------------------------
async def test_a_test_event_goes_to_that_webhook_only_and_is_logged(owner, receiver, dispatcher):
    tested = await _create(owner, receiver.url("/tested"), events=["message.bounced"])
    bystander = await _create(owner, receiver.url("/bystander"))
    receiver.expect("/tested", tested["secret"])
    receiver.expect("/bystander", bystander["secret"])
    webhook_id = tested["webhook"]["id"]
    assert await owner.ok("/v1/mail/webhooks/test", {"id": webhook_id}) == {"ok": True}
    [post] = await receiver.wait_for("/tested", 1)
    assert post.verified and post.event["type"] == "webhook.test"
    assert post.event["data"] == {"webhookId": webhook_id}
    delivery = await _first_delivery(owner, webhook_id)
    assert delivery["eventId"] == post.headers["webhook-id"] and delivery["eventType"] == "webhook.test"
    assert (delivery["attempt"], delivery["statusCode"], delivery["error"], delivery["nextAttemptAt"]) == (
        1,
        200,
        None,
        None,
    )
    assert delivery["id"].startswith("whd_") and delivery["webhookId"] == webhook_id
    assert isinstance(delivery["durationMs"], int) and delivery["createdAt"].endswith("Z")
    assert receiver.posts_to("/bystander") == []


async def _first_delivery(tenant: Tenant, webhook_id: str) -> dict:
    for _ in range(200):
        deliveries = (await tenant.ok("/v1/mail/webhooks/deliveries", {"webhookId": webhook_id}))["deliveries"]
        if deliveries:
            return deliveries[-1]
        await _pause()
    raise AssertionError("no delivery was logged")


async def _pause() -> None:
    await asyncio.sleep(0.05)


async def test_deliveries_are_newest_first_with_a_cursor(owner, receiver, dispatcher):
    created = await _create(owner, receiver.url("/log"))
    receiver.expect("/log", created["secret"], 500)
    webhook_id = created["webhook"]["id"]
    for count in (1, 2, 3):
        await owner.ok("/v1/mail/webhooks/test", {"id": webhook_id})
        await receiver.wait_for("/log", count)
    for _ in range(200):
        page = await owner.ok("/v1/mail/webhooks/deliveries", {"webhookId": webhook_id, "limit": 2})
        if page["nextCursor"]:
            break
        await _pause()
    rest = await owner.ok(
        "/v1/mail/webhooks/deliveries", {"webhookId": webhook_id, "limit": 2, "cursor": page["nextCursor"]}
    )
    deliveries = page["deliveries"] + rest["deliveries"]
    assert len(deliveries) >= 3
    assert [d["id"] for d in deliveries] == sorted((d["id"] for d in deliveries), reverse=True)
    oldest = deliveries[-1]
    assert oldest["statusCode"] == 500 and oldest["error"] == "answered 500: status 500" and oldest["nextAttemptAt"]


# --- end to end: a real send ------------------------------------------------------------------------
async def test_a_sent_message_is_posted_to_a_message_sent_webhook(
    private_app, private_http, smtp_relay, receiver, dispatcher
):
    sender = await make_sender(private_app, private_http, "Hooked Sender")
    created = await sender.ok("/v1/mail/webhooks/create", {"url": receiver.url("/sent"), "events": ["message.sent"]})
    receiver.expect("/sent", created["secret"])
    sent = (
        await sender.ok(
            "/v1/mail/messages/send",
            {"from": f"ann@{sender.domain}", "to": "bob@example.net", "subject": "Hooked", "text": "Hello."},
        )
    )["message"]
    assert sent["status"] == "sent" and len(smtp_relay.received) == 1
    [post] = await receiver.wait_for("/sent", 1)
    assert post.verified
    body = post.event
    assert body["type"] == "message.sent"
    assert body["data"]["message"]["id"] == sent["id"]
    assert body["data"]["message"] == (await sender.ok("/v1/mail/messages/get", {"id": sent["id"]}))["message"]
    [event] = (await sender.ok("/v1/mail/messages/events", {"id": sent["id"]}))["events"]
    assert body["data"]["event"] == event and post.headers["webhook-id"] == event["id"]
    assert body["createdAt"] == event["createdAt"]


async def test_an_added_suppression_is_posted_as_suppression_created(owner, receiver, dispatcher):
    created = await _create(owner, receiver.url("/suppressed"), events=["suppression.created"])
    receiver.expect("/suppressed", created["secret"])
    suppression = (await owner.ok("/v1/mail/suppressions/add", {"email": "Left@Example.com", "note": "asked"}))[
        "suppression"
    ]
    [post] = await receiver.wait_for("/suppressed", 1)
    assert post.verified and post.event["type"] == "suppression.created"
    assert post.event["data"] == {"suppression": suppression}
    assert post.headers["webhook-id"] == "evt_" + suppression["id"].removeprefix("sup_")
