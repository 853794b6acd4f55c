"""A message's timeline (DESIGN.md §9): the events the send pipeline writes, `lastEvent`, the `event`
filter, tenancy, and the webhook jobs queued with each event."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from orgmail.core.webhooks import suppression_event_id
from orgmail.db.tables import Suppression, Webhook, WebhookJob
from orgmail.ids import new_id


def _body(sender, **overrides) -> dict:
    return {"from": f"ann@{sender.domain}", "to": "bob@example.net", "subject": "Hi", "text": "Hello.", **overrides}


async def _events(sender, message_id: str) -> list[dict]:
    return (await sender.ok("/v1/mail/messages/events", {"id": message_id}))["events"]


async def test_a_sent_message_has_one_sent_event_and_it_is_the_last(sender, smtp_relay):
    message = (await sender.ok("/v1/mail/messages/send", _body(sender)))["message"]
    assert message["lastEvent"] == "sent"
    [event] = await _events(sender, message["id"])
    assert event["type"] == "sent" and event["recipient"] is None and event["messageId"] == message["id"]
    assert event["id"].startswith("evt_") and event["orgId"] == sender.org_id
    listed = (await sender.ok("/v1/mail/messages/list", {"event": "sent"}))["messages"]
    assert message["id"] in [m["id"] for m in listed]
    assert (await sender.ok("/v1/mail/messages/list", {"event": "bounced"}))["messages"] == []


async def test_a_recipient_refused_at_send_time_gets_a_hard_bounce_event(sender, smtp_relay):
    smtp_relay.behaviour.refuse["gone@example.net"] = "550 5.1.1 no such user"
    message = (await sender.ok("/v1/mail/messages/send", _body(sender, to=["bob@example.net", "gone@example.net"])))[
        "message"
    ]
    sent, bounced = await _events(sender, message["id"])
    assert sent["type"] == "sent"
    assert bounced["type"] == "bounced" and bounced["recipient"] == "gone@example.net"
    assert bounced["bounceType"] == "hard" and bounced["smtpStatus"] == "5.1.1"
    assert "no such user" in bounced["diagnostic"]
    assert message["lastEvent"] == "bounced"


async def test_a_policy_refusal_is_a_soft_bounce(sender, smtp_relay):
    smtp_relay.behaviour.refuse["bob@example.net"] = "550 5.7.1 relay access denied"
    refused = await sender.call("/v1/mail/messages/send", _body(sender))
    assert refused.status_code == 502
    [bounced] = await _events(sender, refused.json()["error"]["details"]["messageId"])
    assert bounced["bounceType"] == "soft" and bounced["smtpStatus"] == "5.7.1"


async def test_a_failed_attempt_then_a_retry_tells_both(sender, smtp_relay):
    smtp_relay.behaviour.data_reply = "451 4.3.0 try later"
    body = _body(sender, idempotencyKey=f"events-{secrets.token_hex(4)}")
    failed = await sender.call("/v1/mail/messages/send", body)
    assert failed.status_code == 503
    smtp_relay.reset()
    message = (await sender.ok("/v1/mail/messages/send", body))["message"]
    assert [e["type"] for e in await _events(sender, message["id"])] == ["failed", "sent"]
    failed_event = (await _events(sender, message["id"]))[0]
    assert "relay_unavailable" in failed_event["diagnostic"]


async def test_an_all_suppressed_send_has_a_suppressed_event(sender, smtp_relay):
    await sender.ok("/v1/mail/suppressions/add", {"email": "bob@example.net"})
    refused = await sender.call("/v1/mail/messages/send", _body(sender))
    assert refused.status_code == 422
    message_id = refused.json()["error"]["details"]["messageId"]
    assert [e["type"] for e in await _events(sender, message_id)] == ["suppressed"]
    got = (await sender.ok("/v1/mail/messages/get", {"id": message_id}))["message"]
    assert got["lastEvent"] == "suppressed"


async def test_another_orgs_key_gets_404_for_events(sender, smtp_relay, relay_app, relay_http):
    from tests.conftest import make_tenant

    message = (await sender.ok("/v1/mail/messages/send", _body(sender)))["message"]
    stranger = await make_tenant(relay_app, relay_http, "Stranger")
    response = await stranger.call("/v1/mail/messages/events", {"id": message["id"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


async def test_each_event_is_queued_for_the_webhooks_that_want_it(sender, smtp_relay, relay_app):
    async with relay_app.state.session_factory() as session, session.begin():
        wants_sent = Webhook(
            id=new_id("whk"),
            org_id=sender.org_id,
            url="https://hooks.example/a",
            events=["message.sent"],
            secret_encrypted=b"x",
        )
        wants_all = Webhook(
            id=new_id("whk"), org_id=sender.org_id, url="https://hooks.example/b", events=[], secret_encrypted=b"x"
        )
        disabled = Webhook(
            id=new_id("whk"),
            org_id=sender.org_id,
            url="https://hooks.example/c",
            events=[],
            enabled=False,
            secret_encrypted=b"x",
        )
        session.add_all([wants_sent, wants_all, disabled])
    smtp_relay.behaviour.refuse["gone@example.net"] = "550 5.1.1 no such user"
    message = (await sender.ok("/v1/mail/messages/send", _body(sender, to=["bob@example.net", "gone@example.net"])))[
        "message"
    ]
    sent, bounced = await _events(sender, message["id"])
    async with relay_app.state.session_factory() as session:
        jobs = (await session.scalars(select(WebhookJob).where(WebhookJob.org_id == sender.org_id))).all()
        suppression = await session.scalar(select(Suppression).where(Suppression.org_id == sender.org_id))
    assert suppression is not None and suppression.email == "gone@example.net"
    queued = {(job.webhook_id, job.event_id, job.event_type) for job in jobs}
    assert queued == {
        (wants_sent.id, sent["id"], "message.sent"),
        (wants_all.id, sent["id"], "message.sent"),
        (wants_all.id, bounced["id"], "message.bounced"),
        (wants_all.id, suppression_event_id(suppression.id), "suppression.created"),  # the hard bounce's
    }
