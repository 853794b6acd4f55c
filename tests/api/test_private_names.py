"""Names that private DNS serves (.test, .local, .internal, .lan, home.arpa, ...) are ordinary names for
domains, mailboxes, senders, recipients, members and suppressions (DESIGN.md §3); only `localhost` (and
the names under it) and `.invalid` names are refused, saying why."""

from __future__ import annotations

import email
import uuid
from email import policy

import pytest

from orgmail.mail import dkim
from tests.conftest import Sender, make_tenant

# Each test gets names of its own: mailbox addresses are unique across orgs, and the DNS server is shared.
PRIVATE_SUFFIXES = ["test", "example", "local", "internal", "lan", "home.arpa"]
NEVER_MAIL = [("localhost", "localhost"), ("x.localhost", "localhost"), ("foo.invalid", ".invalid")]


def private_name(suffix: str, prefix: str = "acme") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}.{suffix}"


def assert_refused_saying_why(response, path: str, why: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert why in error["message"] and "never" in error["message"], error
    assert "special-use" not in error["message"]
    assert error["details"]["fields"][0]["path"] == path


async def private_sender(app, http, domain_name: str) -> Sender:
    """conftest's `make_sender`, on a domain name of the test's choosing (verified without DNS)."""
    from orgmail.core import domains

    tenant = await make_tenant(app, http, "Private Inc")
    async with app.state.session_factory() as db_session:
        domain = await domains.add_domain(db_session, org_id=tenant.org_id, name=domain_name, vault=app.state.vault)
        await domains.mark_verified(db_session, org_id=tenant.org_id, domain_id=domain.id)
        keys = await domains.dkim_keys(db_session, domain_id=domain.id)
        records = domains.dns_records(domain, keys)
    dkim_records = {r["name"]: r["value"] for r in records if r["purpose"] == "dkim"}
    return Sender(org_id=tenant.org_id, key=tenant.key, http=http, domain=domain.name, dkim_records=dkim_records)


@pytest.mark.parametrize("suffix", PRIVATE_SUFFIXES)
async def test_domains_add_accepts_private_names(tenant, suffix):
    name = private_name(suffix)
    added = await tenant.ok("/v1/mail/domains/add", {"name": name.upper() + "."})
    assert added["domain"]["name"] == name and added["domain"]["status"] == "pending"
    assert {r["name"] for r in added["records"]} >= {f"_orgmail.{name}", f"_dmarc.{name}", name}


@pytest.mark.parametrize("name, why", NEVER_MAIL)
async def test_domains_add_refuses_localhost_and_invalid_names(tenant, name, why):
    response = await tenant.call("/v1/mail/domains/add", {"name": name})
    assert_refused_saying_why(response, "name", why)


async def test_a_private_domain_verifies_against_its_dns_and_gets_mailboxes(tenant, dns_server):
    name = private_name("test")
    added = await tenant.ok("/v1/mail/domains/add", {"name": name})
    dns_server.publish_all(r for r in added["records"] if r["required"])
    verified = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert verified["domain"]["status"] == "verified"
    created = await tenant.ok("/v1/mail/mailboxes/create", {"address": f"Ann@{name.upper()}", "displayName": "Ann"})
    mailbox = created["mailbox"]
    assert mailbox["address"] == f"ann@{name}" and mailbox["domain"] == name and mailbox["localPart"] == "ann"


@pytest.mark.parametrize("suffix", PRIVATE_SUFFIXES)
async def test_mailboxes_create_on_a_verified_private_domain(app, http, suffix):
    owner = await private_sender(app, http, private_name(suffix))
    created = await owner.ok("/v1/mail/mailboxes/create", {"address": f"ann@{owner.domain}"})
    assert created["mailbox"]["address"] == f"ann@{owner.domain}"
    assert (await owner.ok("/v1/mail/mailboxes/get", {"id": created["mailbox"]["id"]}))["mailbox"] == created["mailbox"]


@pytest.mark.parametrize("name, why", NEVER_MAIL)
async def test_mailboxes_create_refuses_localhost_and_invalid_names(tenant, name, why):
    response = await tenant.call("/v1/mail/mailboxes/create", {"address": f"ann@{name}"})
    assert_refused_saying_why(response, "address", why)


async def test_send_from_and_to_private_names_relays_signed(relay_app, relay_http, smtp_relay):
    sender = await private_sender(relay_app, relay_http, private_name("test", "hello"))
    corp = private_name("local", "corp")
    await sender.ok("/v1/mail/suppressions/add", {"email": f"Gone@{corp.upper()}"})
    body = {
        "from": f"Hello <hello@{sender.domain}>",
        "to": [f"Ann <ann@{corp}>", f"gone@{corp}"],
        "cc": [f"bob@mail.{private_name('home.arpa')}"],
        "bcc": [f"eve@nas.{private_name('lan')}"],
        "replyTo": f"support@{private_name('internal')}",
        "subject": "Private names",
        "text": "Hello\n",
    }
    message = (await sender.ok("/v1/mail/messages/send", body))["message"]
    assert message["status"] == "sent" and message["domain"] == sender.domain
    assert message["messageId"].endswith(f"@{sender.domain}>")
    assert message["suppressedRecipients"] == [f"gone@{corp}"]

    [received] = smtp_relay.received
    assert received.mail_from == f"hello@{sender.domain}"
    assert received.rcpt_tos == [f"ann@{corp}", body["cc"][0], body["bcc"][0]]
    assert dkim.verify(received.content, txt_records=sender.dkim_records) == [True, True]
    parsed = email.message_from_bytes(received.content, policy=policy.default)
    assert parsed["From"] == body["from"] and parsed["To"] == ", ".join(body["to"])  # suppressed: envelope only
    assert parsed["Reply-To"] == body["replyTo"]


async def test_send_from_a_private_name_to_the_outbox(app, http, settings):
    sender = await private_sender(app, http, private_name("local", "corp"))
    body = {"from": f"hello@{sender.domain}", "to": f"ann@{private_name('example')}", "subject": "s", "text": "t"}
    message = (await sender.ok("/v1/mail/messages/send", body))["message"]
    content = (settings.outbox_dir / f"{message['messageId'].strip('<>')}.eml").read_bytes()
    assert dkim.verify(content, txt_records=sender.dkim_records) == [True, True]


@pytest.mark.parametrize("name, why", NEVER_MAIL)
async def test_send_refuses_localhost_and_invalid_senders_and_recipients(app, http, name, why):
    sender = await private_sender(app, http, private_name("test"))
    body = {"from": f"hello@{sender.domain}", "to": "ann@example.net", "subject": "s", "text": "t"}
    for field, path, value in [
        ("to", "to.0", f"Ann <ann@{name}>"),
        ("cc", "cc.0", [f"ann@{name}"]),
        ("bcc", "bcc.0", [f"ann@{name}"]),
        ("from", "from", f"hello@{name}"),
    ]:
        response = await sender.call("/v1/mail/messages/send", {**body, field: value})
        assert_refused_saying_why(response, path, why)


async def test_members_add_with_an_email_on_a_private_name(tenant):
    corp = private_name("local", "corp")
    added = await tenant.ok("/v1/mail/members/add", {"userId": "u-local", "email": f"Ann@{corp.upper()}"})
    assert added["member"]["email"] == f"Ann@{corp}"  # the domain lower-cased, the local part as given
    listed = await tenant.ok("/v1/mail/members/list")
    assert [m["email"] for m in listed["members"]] == [f"Ann@{corp}"]


@pytest.mark.parametrize("name, why", NEVER_MAIL)
async def test_members_add_refuses_localhost_and_invalid_names(tenant, name, why):
    response = await tenant.call("/v1/mail/members/add", {"userId": "u-1", "email": f"ann@{name}"})
    assert_refused_saying_why(response, "email", why)


async def test_suppressions_on_a_private_name(tenant):
    corp = private_name("local", "corp")
    added = await tenant.ok("/v1/mail/suppressions/add", {"email": f"Gone@{corp.upper()}"})
    assert added["suppression"]["email"] == f"gone@{corp}"
    listed = await tenant.ok("/v1/mail/suppressions/list")
    assert [s["email"] for s in listed["suppressions"]] == [f"gone@{corp}"]
    assert await tenant.ok("/v1/mail/suppressions/remove", {"email": f"gone@{corp}"}) == {"ok": True}


@pytest.mark.parametrize("name, why", NEVER_MAIL)
async def test_suppressions_add_refuses_localhost_and_invalid_names(tenant, name, why):
    response = await tenant.call("/v1/mail/suppressions/add", {"email": f"ann@{name}"})
    assert_refused_saying_why(response, "email", why)
