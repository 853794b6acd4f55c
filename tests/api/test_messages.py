"""messages.send over HTTP to a real SMTP relay: what arrives, signed and verifiable; get and list."""

from __future__ import annotations

import base64
import email
from email import policy

import pytest
from sqlalchemy import select

from orgmail.db.tables import Message
from orgmail.mail import dkim
from tests.conftest import ADMIN_TOKEN

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _send_body(sender, **overrides) -> dict:
    body = {
        "from": f"Ann Example <ann@{sender.domain}>",
        "to": "bob@example.net",
        "subject": "Quarterly report",
        "text": "Hello Bob,\n\nthe numbers are in.\n",
    }
    body.update(overrides)
    return body


async def test_send_relays_a_message_both_dkim_signatures_verify(sender, smtp_relay):
    answer = await sender.ok("/v1/mail/messages/send", _send_body(sender))
    message = answer["message"]
    assert message["status"] == "sent" and message["id"].startswith("msg_")
    assert message["relayResponse"].startswith("250 2.0.0 Ok: queued as")
    assert message["sentAt"] is not None and message["error"] is None
    assert message["messageId"] == f"<{message['id']}@{sender.domain}>"
    assert message["dkimSelector"] and message["dkimSelector"].endswith("r")
    assert message["source"] == "api"

    [received] = smtp_relay.received
    assert received.mail_from == f"ann@{sender.domain}"
    assert received.rcpt_tos == ["bob@example.net"]
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]
    assert message["sizeBytes"] == len(received.content)


async def test_headers_body_attachments_and_bcc_only_in_the_envelope(sender, smtp_relay):
    body = _send_body(
        sender,
        to=["Bob <bob@example.net>", "carol@example.net"],
        cc=["dave@example.org"],
        bcc=["eve@example.org"],
        replyTo="Support <support@example.com>",
        subject="Ünïcode subject",
        html='<p>Hello <img src="cid:logo"></p>',
        headers={"X-Campaign": "q4", "List-Unsubscribe": "<mailto:unsubscribe@example.com>"},
        attachments=[
            {"filename": "report.pdf", "content": base64.b64encode(b"%PDF-1.4 test").decode()},
            {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "contentId": "logo"},
        ],
        tags={"campaign": "q4"},
    )
    message = (await sender.ok("/v1/mail/messages/send", body))["message"]
    assert message["to"] == ["Bob <bob@example.net>", "carol@example.net"]
    assert message["bcc"] == ["eve@example.org"] and message["tags"] == {"campaign": "q4"}

    [received] = smtp_relay.received
    assert received.rcpt_tos == ["bob@example.net", "carol@example.net", "dave@example.org", "eve@example.org"]
    assert b"eve@example.org" not in received.content
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]

    parsed = email.message_from_bytes(received.content, policy=policy.default)
    assert parsed["From"] == f"Ann Example <ann@{sender.domain}>"
    assert parsed["To"] == "Bob <bob@example.net>, carol@example.net"
    assert parsed["Cc"] == "dave@example.org" and parsed["Bcc"] is None
    assert parsed["Reply-To"] == "Support <support@example.com>"
    assert parsed["Subject"] == "Ünïcode subject"
    assert parsed["Message-ID"] == message["messageId"] and parsed["Date"]
    assert parsed["X-Campaign"] == "q4" and parsed["List-Unsubscribe"] == "<mailto:unsubscribe@example.com>"
    assert "campaign" not in {name.lower() for name in parsed.keys() if name.lower() != "x-campaign"}
    assert parsed.get_content_type() == "multipart/mixed"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello Bob,\n\nthe numbers are in.\n"
    html = parsed.get_body(("html",))
    assert '<img src="cid:logo">' in html.get_content()
    [inline] = [part for part in parsed.walk() if part["Content-ID"] == "<logo>"]
    assert inline.get_content_type() == "image/png" and inline.get_content() == PNG
    [pdf] = list(parsed.iter_attachments())
    assert pdf.get_filename() == "report.pdf" and pdf.get_content_type() == "application/pdf"
    assert pdf.get_content() == b"%PDF-1.4 test"
    # Everything is 7-bit on the wire, so no relay has a reason to re-encode (and break DKIM).
    assert all(byte < 128 for byte in received.content)


async def test_suppressed_recipients_are_left_out_and_listed(sender, smtp_relay):
    await sender.ok("/v1/mail/suppressions/add", {"email": "gone@example.net"})
    message = (
        await sender.ok("/v1/mail/messages/send", _send_body(sender, to=["bob@example.net", "gone@example.net"]))
    )["message"]
    assert message["status"] == "sent" and message["suppressedRecipients"] == ["gone@example.net"]
    assert smtp_relay.received[0].rcpt_tos == ["bob@example.net"]


async def test_all_recipients_suppressed_is_422_and_a_suppressed_row(sender, smtp_relay):
    await sender.ok("/v1/mail/suppressions/add", {"email": "gone@example.net"})
    response = await sender.call("/v1/mail/messages/send", _send_body(sender, to="gone@example.net"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "all_recipients_suppressed"
    row = await sender.ok("/v1/mail/messages/get", {"id": error["details"]["messageId"]})
    assert row["message"]["status"] == "suppressed" and row["message"]["suppressedRecipients"] == ["gone@example.net"]
    assert smtp_relay.received == []


async def test_unknown_and_unverified_sender_domains(sender, smtp_relay, relay_app):
    from tests.conftest import add_domain_row

    unknown = await sender.call("/v1/mail/messages/send", _send_body(sender, **{"from": "a@nowhere.example"}))
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "domain_not_found"
    pending = await add_domain_row(relay_app, sender.org_id, verified=False)
    unverified = await sender.call("/v1/mail/messages/send", _send_body(sender, **{"from": f"a@{pending}"}))
    assert unverified.status_code == 403 and unverified.json()["error"]["code"] == "domain_not_verified"
    assert smtp_relay.received == []


async def test_invalid_requests_are_400_with_a_field_path(sender, smtp_relay):
    cases = [
        ({"text": None}, "text"),
        ({"to": []}, "to"),
        ({"to": "not an address"}, "to.0"),
        ({"cc": ["x@y.org, z@y.org"]}, "cc.0"),
        ({"bcc": ["0@[ "]}, "bcc.0"),  # crashes the stdlib's header parser
        ({"subject": "Hi\r\nBcc: victim@example.org"}, "subject"),
        ({"headers": {"X-Evil": "a\r\nBcc: victim@example.org"}}, "headers.X-Evil"),
        ({"headers": {"Bcc": "victim@example.org"}}, "headers.Bcc"),
        ({"headers": {"DKIM-Signature": "v=1"}}, "headers.DKIM-Signature"),
        ({"headers": {"Bad Name": "x"}}, "headers.Bad Name"),
        ({"attachments": [{"filename": "a.bin", "content": "not base64!"}]}, "attachments.0.content"),
        (
            {"attachments": [{"filename": "a.bin", "content": "", "contentType": "text/plain\r\nX: y"}]},
            "attachments.0.contentType",
        ),
        ({"to": [f"r{n}@example.net" for n in range(51)]}, "to"),
    ]
    for overrides, path in cases:
        response = await sender.call("/v1/mail/messages/send", _send_body(sender, **overrides))
        assert response.status_code == 400, (overrides, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"]["fields"][0]["path"].startswith(path), (overrides, error)
    assert smtp_relay.received == []


async def test_message_over_the_size_limit_is_413(sender, smtp_relay, relay_app):
    limit = relay_app.state.settings.max_message_bytes
    big = base64.b64encode(b"x" * (limit // 4 * 3 + 1024)).decode()
    response = await sender.call(
        "/v1/mail/messages/send", _send_body(sender, attachments=[{"filename": "big.bin", "content": big}])
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "message_too_large"
    assert smtp_relay.received == []


async def test_idempotency_key_in_header_or_body_returns_the_first_row(sender, smtp_relay):
    body = _send_body(sender)
    first = await sender.call("/v1/mail/messages/send", body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 200
    again = await sender.call("/v1/mail/messages/send", {**body, "idempotencyKey": "order-1"})
    assert again.status_code == 200 and again.json() == first.json()
    assert len(smtp_relay.received) == 1
    conflict = await sender.call(
        "/v1/mail/messages/send", {**body, "subject": "Other"}, headers={"Idempotency-Key": "order-1"}
    )
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    mismatch = await sender.call(
        "/v1/mail/messages/send", {**body, "idempotencyKey": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert mismatch.status_code == 400
    assert len(smtp_relay.received) == 1


async def test_get_and_list_newest_first_with_filters(sender, smtp_relay):
    ids = []
    for n in range(3):
        ids.append(
            (await sender.ok("/v1/mail/messages/send", _send_body(sender, to=f"r{n}@example.net")))["message"]["id"]
        )
    await sender.ok("/v1/mail/suppressions/add", {"email": "quiet@example.net"})
    suppressed = await sender.call("/v1/mail/messages/send", _send_body(sender, to="quiet@example.net"))
    suppressed_id = suppressed.json()["error"]["details"]["messageId"]
    bcc_id = (await sender.ok("/v1/mail/messages/send", _send_body(sender, bcc=["Hidden <hidden@example.net>"])))[
        "message"
    ]["id"]

    everything = await sender.ok("/v1/mail/messages/list")
    assert [m["id"] for m in everything["messages"]] == [bcc_id, suppressed_id, *ids[::-1]]
    page = await sender.ok("/v1/mail/messages/list", {"limit": 2})
    rest = await sender.ok("/v1/mail/messages/list", {"limit": 10, "cursor": page["nextCursor"]})
    assert [m["id"] for m in page["messages"] + rest["messages"]] == [m["id"] for m in everything["messages"]]
    assert rest["nextCursor"] is None

    by_status = await sender.ok("/v1/mail/messages/list", {"status": "suppressed"})
    assert [m["id"] for m in by_status["messages"]] == [suppressed_id]
    by_recipient = await sender.ok("/v1/mail/messages/list", {"recipient": "r1@example.net"})
    assert [m["id"] for m in by_recipient["messages"]] == [ids[1]]
    by_bcc = await sender.ok("/v1/mail/messages/list", {"recipient": "hidden@example.net"})
    assert [m["id"] for m in by_bcc["messages"]] == [bcc_id]
    assert (await sender.ok("/v1/mail/messages/list", {"recipient": "1@example.net"}))["messages"] == []

    got = await sender.ok("/v1/mail/messages/get", {"id": ids[0]})
    assert got["message"] == everything["messages"][-1]


async def test_other_org_cannot_see_or_send_as_us(sender, smtp_relay, relay_app, relay_http):
    from tests.conftest import make_tenant

    stranger = await make_tenant(relay_app, relay_http, "Stranger")
    message = (await sender.ok("/v1/mail/messages/send", _send_body(sender)))["message"]
    gone = await stranger.call("/v1/mail/messages/get", {"id": message["id"]})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert (await stranger.ok("/v1/mail/messages/list"))["messages"] == []
    forbidden = await stranger.call("/v1/mail/messages/list", {"orgId": sender.org_id})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden_org"
    spoof = await stranger.call("/v1/mail/messages/send", _send_body(sender))
    assert spoof.status_code == 400 and spoof.json()["error"]["code"] == "domain_not_found"
    # The same idempotency key in two orgs names two different messages.
    mine = await sender.call("/v1/mail/messages/send", _send_body(sender), headers={"Idempotency-Key": "shared"})
    theirs = await stranger.call("/v1/mail/messages/send", _send_body(sender), headers={"Idempotency-Key": "shared"})
    assert mine.status_code == 200 and theirs.status_code == 400
    assert len(smtp_relay.received) == 2


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic abc", "Bearer omk_01ABC_wrongsecret"])
async def test_send_answers_401_for_a_missing_or_invalid_key(sender, smtp_relay, header):
    headers = {"Authorization": header} if header else {}
    response = await sender.http.post("/v1/mail/messages/send", json=_send_body(sender), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "A valid API key is required."}}
    assert smtp_relay.received == []


async def test_send_with_the_admin_token_names_the_org(sender, smtp_relay):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    no_org = await sender.http.post("/v1/mail/messages/send", json=_send_body(sender), headers=admin)
    assert no_org.status_code == 400 and no_org.json()["error"]["details"]["fields"][0]["path"] == "orgId"
    unknown = await sender.http.post("/v1/mail/messages/send", json=_send_body(sender, orgId="org_nope"), headers=admin)
    assert unknown.status_code == 404
    sent = await sender.http.post("/v1/mail/messages/send", json=_send_body(sender, orgId=sender.org_id), headers=admin)
    assert sent.status_code == 200 and sent.json()["message"]["orgId"] == sender.org_id
    assert len(smtp_relay.received) == 1


async def test_the_row_keeps_the_signed_bytes(sender, smtp_relay, relay_app):
    message = (await sender.ok("/v1/mail/messages/send", _send_body(sender)))["message"]
    async with relay_app.state.session_factory() as session:
        row = await session.scalar(select(Message).where(Message.id == message["id"]))
    assert row.raw == smtp_relay.received[0].content


async def test_lone_surrogates_are_400_not_500(sender, smtp_relay):
    raw = f'{{"from": "ann@{sender.domain}", "to": "bob@example.net", "subject": "x", "text": "a\\ud800b"}}'
    response = await sender.http.post(
        "/v1/mail/messages/send",
        content=raw,
        headers={"Authorization": f"Bearer {sender.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    assert smtp_relay.received == []


async def test_openapi_declares_the_send_statuses(sender):
    document = (await sender.http.get("/openapi.json")).json()
    send = document["paths"]["/v1/mail/messages/send"]["post"]
    assert {"200", "400", "401", "403", "404", "409", "413", "422", "502", "503"} <= set(send["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in send["parameters"])


async def test_embedded_default_writes_the_signed_message_to_the_outbox(outbox_sender, settings):
    message = (await outbox_sender.ok("/v1/mail/messages/send", _send_body(outbox_sender, bcc=["eve@example.org"])))[
        "message"
    ]
    path = settings.outbox_dir / f"{message['messageId'].strip('<>')}.eml"
    assert message["status"] == "sent" and str(path) in message["relayResponse"]
    content = path.read_bytes()
    assert len(content) == message["sizeBytes"] and b"eve@example.org" not in content
    assert dkim.verify(content, txt_records=outbox_sender.dkim_records) == [True, True]
    assert not [p for p in settings.outbox_dir.iterdir() if p.name.startswith(".tmp-")]
