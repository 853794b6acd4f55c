"""The send pipeline's fault rules (DESIGN.md §5): nothing is lost, nothing is delivered twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from orgmail.app import create_app
from orgmail.core.webhooks import create_webhook, suppression_event_id
from orgmail.db.tables import Message, MessageEvent, Suppression, WebhookJob, utcnow
from orgmail.ids import new_id
from orgmail.mail import dkim


def _body(sender, **overrides) -> dict:
    return {"from": f"ann@{sender.domain}", "to": "bob@example.net", "subject": "Hi", "text": "Hello.", **overrides}


async def _row(app, message_id: str) -> Message:
    async with app.state.session_factory() as session:
        return await session.scalar(select(Message).where(Message.id == message_id))


async def _suppressed(app, org_id: str) -> dict[str, str]:
    async with app.state.session_factory() as session:
        rows = await session.scalars(select(Suppression).where(Suppression.org_id == org_id))
        return {row.email: row.reason for row in rows}


async def _fail_then_retry(sender, smtp_relay, relay_app, *, key: str, body: dict | None = None):
    """Send (expecting 503), let the relay recover, retry with the same key (expecting 200)."""
    body = body or _body(sender)
    failed = await sender.call("/v1/mail/messages/send", body, headers={"Idempotency-Key": key})
    assert failed.status_code == 503, failed.text
    assert failed.headers["Retry-After"]
    error = failed.json()["error"]
    assert error["code"] == "relay_unavailable"
    row = await _row(relay_app, error["details"]["messageId"])
    assert row.status == "failed" and row.error_code == "relay_unavailable" and row.error_message
    assert row.raw is not None
    assert smtp_relay.received == []

    await smtp_relay.start() if smtp_relay._server is None else None
    smtp_relay.reset()
    retried = await sender.call("/v1/mail/messages/send", body, headers={"Idempotency-Key": key})
    assert retried.status_code == 200, retried.text
    message = retried.json()["message"]
    assert message["id"] == row.id and message["messageId"] == row.message_id
    assert message["status"] == "sent" and message["error"] is None
    [received] = smtp_relay.received
    assert received.content == row.raw  # the very bytes signed the first time
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]
    once_more = await sender.call("/v1/mail/messages/send", body, headers={"Idempotency-Key": key})
    assert once_more.status_code == 200 and once_more.json()["message"]["id"] == row.id
    assert len(smtp_relay.received) == 1
    return message


async def test_relay_down_is_503_and_a_retry_relays_the_same_message_once(sender, smtp_relay, relay_app):
    await sender.ok("/v1/mail/messages/send", _body(sender))  # a pooled connection exists now
    await smtp_relay.stop()
    smtp_relay.reset()
    await _fail_then_retry(sender, smtp_relay, relay_app, key="down-1")


async def test_a_deferred_recipient_defers_the_whole_message(sender, smtp_relay, relay_app):
    smtp_relay.behaviour.refuse["carol@example.net"] = "451 4.7.1 greylisted, try again later"
    body = _body(sender, to=["bob@example.net", "carol@example.net"])
    message = await _fail_then_retry(sender, smtp_relay, relay_app, key="greylist-1", body=body)
    assert smtp_relay.received[0].rcpt_tos == ["bob@example.net", "carol@example.net"]
    assert message["rejectedRecipients"] == []


async def test_data_answered_with_4xx_is_503(sender, smtp_relay, relay_app):
    smtp_relay.behaviour.data_reply = "451 4.3.0 queue full"
    await _fail_then_retry(sender, smtp_relay, relay_app, key="data-451")


async def test_connection_dropped_mid_session_is_503(sender, smtp_relay, relay_app):
    for stage in ("mail", "rcpt", "data"):
        smtp_relay.reset()
        smtp_relay.behaviour.drop_at = stage
        await _fail_then_retry(sender, smtp_relay, relay_app, key=f"drop-{stage}")
    # The pool replaced the dropped connections by itself.
    assert (await sender.ok("/v1/mail/messages/send", _body(sender)))["message"]["status"] == "sent"


async def test_some_recipients_refused_is_sent_with_rejections_and_bounce_suppressions(sender, smtp_relay, relay_app):
    smtp_relay.behaviour.refuse.update(
        {
            "nobody@example.net": "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown",
            "policy@example.net": "554 5.7.1 <policy@example.net>: Relay access denied",
        }
    )
    body = _body(sender, to=["bob@example.net", "nobody@example.net"], cc=["policy@example.net"])
    message = (await sender.ok("/v1/mail/messages/send", body))["message"]
    assert message["status"] == "sent"
    assert message["rejectedRecipients"] == [
        {
            "email": "nobody@example.net",
            "code": 550,
            "message": "5.1.1 <nobody@example.net>: Recipient address rejected: User unknown",
        },
        {"email": "policy@example.net", "code": 554, "message": "5.7.1 <policy@example.net>: Relay access denied"},
    ]
    [received] = smtp_relay.received
    assert received.rcpt_tos == ["bob@example.net"]
    # A policy refusal (5.7.x) is about our relay, not the address: no suppression for it.
    assert await _suppressed(relay_app, sender.org_id) == {"nobody@example.net": "bounce"}
    again = await sender.call("/v1/mail/messages/send", body)
    assert again.json()["message"]["suppressedRecipients"] == ["nobody@example.net"]


async def test_every_recipient_refused_is_502_bounced_and_suppressed(sender, smtp_relay, relay_app):
    smtp_relay.behaviour.refuse.update(
        {
            "bob@example.net": "550 5.1.1 User unknown",
            "carol@example.net": "550 5.1.1 User unknown",
        }
    )
    body = _body(sender, to=["bob@example.net", "carol@example.net"])
    response = await sender.call("/v1/mail/messages/send", body, headers={"Idempotency-Key": "bounce-all"})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "relay_rejected"
    row = await _row(relay_app, error["details"]["messageId"])
    assert row.status == "bounced" and row.sent_at is None and row.error_code == "relay_rejected"
    assert [r["email"] for r in row.rejected_recipients] == ["bob@example.net", "carol@example.net"]
    assert await _suppressed(relay_app, sender.org_id) == {"bob@example.net": "bounce", "carol@example.net": "bounce"}
    assert smtp_relay.received == []
    repeat = await sender.call("/v1/mail/messages/send", body, headers={"Idempotency-Key": "bounce-all"})
    assert repeat.status_code == 502 and repeat.json()["error"]["details"]["messageId"] == row.id


async def test_message_refused_at_data_is_502_without_suppressions(sender, smtp_relay, relay_app):
    smtp_relay.behaviour.data_reply = "554 5.6.0 content refused"
    response = await sender.call("/v1/mail/messages/send", _body(sender))
    assert response.status_code == 502
    row = await _row(relay_app, response.json()["error"]["details"]["messageId"])
    assert row.status == "bounced" and row.relay_response == "554 5.6.0 content refused"
    assert await _suppressed(relay_app, sender.org_id) == {}


async def test_concurrent_duplicates_are_delivered_once(sender, smtp_relay):
    smtp_relay.behaviour.delay_data = 0.3  # the first request is still relaying while the others arrive
    body = _body(sender, idempotencyKey="burst-1")
    answers = await asyncio.gather(*(sender.call("/v1/mail/messages/send", body) for _ in range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.json()["message"]["id"] for a in answers}) == 1
    assert all(a.json()["message"]["status"] == "sent" for a in answers)
    assert len(smtp_relay.received) == 1


async def test_concurrent_retries_of_a_failed_message_relay_it_once(sender, smtp_relay, relay_app):
    smtp_relay.behaviour.data_reply = "451 4.3.0 try later"
    body = _body(sender, idempotencyKey="retry-burst")
    first = await sender.call("/v1/mail/messages/send", body)
    assert first.status_code == 503
    smtp_relay.reset()
    smtp_relay.behaviour.delay_data = 0.3
    answers = await asyncio.gather(*(sender.call("/v1/mail/messages/send", body) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert {a.json()["message"]["id"] for a in answers} == {first.json()["error"]["details"]["messageId"]}
    assert len(smtp_relay.received) == 1


async def _subscribe_everything(app, org_id: str) -> None:
    """A webhook of the org that wants every event (nobody listens at it: its jobs stay queued)."""
    async with app.state.session_factory() as session:
        await create_webhook(
            session, org_id=org_id, url="http://127.0.0.1:9/hook", vault=app.state.vault, allow_private=True
        )


async def _events_and_jobs(app, message_id: str) -> tuple[list[str], int]:
    async with app.state.session_factory() as session:
        events = (await session.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id))).all()
        jobs = await session.scalar(
            select(func.count()).select_from(WebhookJob).where(WebhookJob.event_id.in_([e.id for e in events]))
        )
    return sorted(e.type for e in events), jobs or 0


async def test_an_outcome_whose_commit_reply_is_lost_is_written_again_with_its_events_once(
    sender, smtp_relay, relay_app, monkeypatch
):
    """The database committed the outcome but the reply never came: the write is retried, and the
    retry writes the same events, not a second set (and queues no second webhook job)."""
    await _subscribe_everything(relay_app, sender.org_id)
    send_log = relay_app.state.send_log
    real_update = send_log.update
    attempts = []

    async def update_losing_the_first_reply(row_id, values, **kwargs):
        attempts.append(row_id)
        result = await real_update(row_id, values, **kwargs)
        if len(attempts) == 1:
            raise OperationalError("UPDATE messages", {}, ConnectionResetError("connection lost"))
        return result

    monkeypatch.setattr(send_log, "update", update_losing_the_first_reply)
    message = (await sender.ok("/v1/mail/messages/send", _body(sender)))["message"]
    assert len(attempts) == 2
    assert (await _row(relay_app, message["id"])).status == "sent"
    assert await _events_and_jobs(relay_app, message["id"]) == (["sent"], 1)
    assert len(smtp_relay.received) == 1


async def test_a_refusal_at_send_time_queues_suppression_created_for_the_new_suppression(sender, smtp_relay, relay_app):
    await _subscribe_everything(relay_app, sender.org_id)
    smtp_relay.behaviour.refuse = {"gone@example.net": "550 5.1.1 No such user"}
    await sender.ok("/v1/mail/messages/send", _body(sender, to=["bob@example.net", "gone@example.net"]))
    async with relay_app.state.session_factory() as session:
        [suppression] = (await session.scalars(select(Suppression).where(Suppression.org_id == sender.org_id))).all()
        jobs = (await session.scalars(select(WebhookJob).where(WebhookJob.org_id == sender.org_id))).all()
    assert suppression.email == "gone@example.net" and suppression.reason == "bounce"
    assert sorted(job.event_type for job in jobs) == ["message.bounced", "message.sent", "suppression.created"]
    created = next(job for job in jobs if job.event_type == "suppression.created")
    assert created.event_id == suppression_event_id(suppression.id)


async def test_on_start_stale_queued_rows_become_outcome_unknown(sender, settings, relay_app):
    now = utcnow()
    stale, fresh = new_id("msg"), new_id("msg")
    async with relay_app.state.session_factory() as session:
        async with session.begin():
            for row_id, age in ((stale, timedelta(minutes=5)), (fresh, timedelta(seconds=0))):
                session.add(
                    Message(
                        id=row_id,
                        org_id=sender.org_id,
                        from_address=f"ann@{sender.domain}",
                        to=["bob@example.net"],
                        cc=[],
                        bcc=[],
                        reply_to=[],
                        subject="cut off",
                        status="queued",
                        message_id=f"<{row_id}@{sender.domain}>",
                        domain=sender.domain,
                        suppressed_recipients=[],
                        rejected_recipients=[],
                        tags={},
                        size_bytes=1,
                        raw=b"x",
                        created_at=now - age,
                        updated_at=now - age,
                    )
                )
    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        pass
    stale_row, fresh_row = await _row(relay_app, stale), await _row(relay_app, fresh)
    assert stale_row.status == "failed" and stale_row.error_code == "outcome_unknown"
    assert stale_row.last_event == "failed"
    assert (await _events_and_jobs(relay_app, stale))[0] == ["failed"]  # its timeline says so too
    assert fresh_row.status == "queued"  # another process may be relaying it right now
    assert (await _events_and_jobs(relay_app, fresh))[0] == []


async def test_a_reply_lost_after_the_whole_message_is_504_and_a_retry_relays_nothing(sender, smtp_relay, relay_app):
    """RFC 1047: the relay read the whole message and may have queued it. The caller is told the
    outcome is unknown, and a retry with the same key does not deliver it a second time."""
    smtp_relay.behaviour.drop_after_data = True
    body = _body(sender, idempotencyKey="lost-reply")
    lost = await sender.call("/v1/mail/messages/send", body)
    assert lost.status_code == 504, lost.text
    error = lost.json()["error"]
    assert error["code"] == "relay_outcome_unknown" and "retryUnknown" in error["message"]
    row = await _row(relay_app, error["details"]["messageId"])
    assert row.status == "failed" and row.error_code == "outcome_unknown"
    assert len(smtp_relay.received) == 1  # the relay did get it

    smtp_relay.reset()
    again = await sender.call("/v1/mail/messages/send", body)
    assert again.status_code == 504 and again.json()["error"]["details"]["messageId"] == row.id
    assert smtp_relay.received == []  # nothing relayed on a plain retry

    forced = await sender.call("/v1/mail/messages/send", {**body, "retryUnknown": True})
    assert forced.status_code == 200, forced.text  # retryUnknown is not part of the fingerprint
    assert forced.json()["message"]["id"] == row.id and forced.json()["message"]["status"] == "sent"
    [received] = smtp_relay.received
    assert received.content == row.raw
    assert (await sender.call("/v1/mail/messages/send", body)).json()["message"]["status"] == "sent"
    assert len(smtp_relay.received) == 1


async def test_a_row_left_queued_by_a_stopped_process_answers_504_not_a_wait(sender, smtp_relay, relay_app):
    """A crash and a restart within the relay timeout leave a row `queued` that no start-up settles:
    a retry with its key must learn the outcome is unknown, not wait and answer 409 forever."""
    body = _body(sender, idempotencyKey="left-queued")
    sent = (await sender.ok("/v1/mail/messages/send", body))["message"]
    async with relay_app.state.session_factory() as session, session.begin():
        row = await session.get(Message, sent["id"])
        row.status, row.updated_at = "queued", utcnow() - timedelta(minutes=5)  # as a crash mid-relay leaves it
    smtp_relay.reset()
    retried = await sender.call("/v1/mail/messages/send", body)
    assert retried.status_code == 504, retried.text
    assert retried.json()["error"]["code"] == "relay_outcome_unknown"
    assert (await _row(relay_app, sent["id"])).error_code == "outcome_unknown"
    assert smtp_relay.received == []
