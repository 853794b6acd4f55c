"""Domains over HTTP, verified against a real authoritative DNS server on loopback (`dns_server`)."""

from __future__ import annotations

import uuid

import pytest

from orgmail.mail.dns import DnsTxtResolver
from tests.dns_server import unused_udp_port


def fresh_domain() -> str:
    return f"d{uuid.uuid4().hex[:10]}.example.com"


async def add_domain(tenant, name: str | None = None) -> dict:
    return await tenant.ok("/v1/mail/domains/add", {"name": name or fresh_domain()})


def required(records: list[dict]) -> list[dict]:
    return [r for r in records if r["required"]]


def record(records: list[dict], purpose: str, algorithm: str | None = None) -> dict:
    return next(
        r for r in records if r["purpose"] == purpose and (algorithm is None or f"k={algorithm};" in r["value"])
    )


async def test_add_returns_the_records_to_publish_and_the_dkim_selectors(tenant):
    name = fresh_domain()
    added = await tenant.ok("/v1/mail/domains/add", {"name": name.upper() + "."})
    domain, records = added["domain"], added["records"]
    assert domain["id"].startswith("dom_") and domain["orgId"] == tenant.org_id
    assert domain["name"] == name and domain["status"] == "pending" and domain["verifiedAt"] is None
    rsa_selector, ed_selector = domain["dkimSelectors"]
    assert rsa_selector.endswith("r") and ed_selector.endswith("e")

    assert [(r["purpose"], r["required"]) for r in records] == [
        ("verification", True),
        ("dkim", True),
        ("dkim", True),
        ("spf", False),
        ("dmarc", False),
    ]
    assert all(r["type"] == "TXT" for r in records)
    verification = record(records, "verification")
    assert verification["name"] == f"_orgmail.{name}"
    assert verification["value"].startswith("orgmail-verification=")
    rsa, ed25519 = record(records, "dkim", "rsa"), record(records, "dkim", "ed25519")
    assert rsa["name"] == f"{rsa_selector}._domainkey.{name}" and ed25519["name"] == f"{ed_selector}._domainkey.{name}"
    assert rsa["value"].startswith("v=DKIM1; k=rsa; p=") and len(rsa["value"]) > 255
    assert record(records, "spf")["name"] == name and record(records, "spf")["value"].startswith("v=spf1")
    assert record(records, "dmarc")["name"] == f"_dmarc.{name}"


async def test_verify_with_nothing_published_lists_every_missing_record(tenant):
    added = await add_domain(tenant)
    result = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert result["domain"]["status"] == "pending" and result["domain"]["verifiedAt"] is None
    assert result["checks"] == [
        {"name": r["name"], "expected": r["value"], "found": [], "ok": False} for r in required(added["records"])
    ]


async def test_verify_with_only_the_verification_record_is_still_pending(tenant, dns_server):
    added = await add_domain(tenant)
    verification = record(added["records"], "verification")
    dns_server.publish(verification["name"], verification["value"])
    result = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert result["domain"]["status"] == "pending"
    assert [c["ok"] for c in result["checks"]] == [True, False, False]
    assert result["checks"][0]["found"] == [verification["value"]]


async def test_verify_with_a_wrong_dkim_key_is_still_pending_and_shows_what_was_found(tenant, dns_server):
    added = await add_domain(tenant)
    other = await add_domain(tenant)  # someone else's key, e.g. an old record left in place
    rsa = record(added["records"], "dkim", "rsa")
    wrong_value = record(other["records"], "dkim", "rsa")["value"]
    for r in required(added["records"]):
        dns_server.publish(r["name"], wrong_value if r is rsa else r["value"])
    result = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert result["domain"]["status"] == "pending"
    rsa_check = next(c for c in result["checks"] if c["name"] == rsa["name"])
    assert rsa_check == {"name": rsa["name"], "expected": rsa["value"], "found": [wrong_value], "ok": False}
    assert sum(c["ok"] for c in result["checks"]) == 2


async def test_verify_succeeds_when_every_required_record_is_published(tenant, dns_server):
    added = await add_domain(tenant)
    dns_server.publish_all(required(added["records"]))  # the RSA record goes out as two strings
    result = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert all(c["ok"] for c in result["checks"]) and len(result["checks"]) == 3
    rsa = record(added["records"], "dkim", "rsa")
    assert next(c for c in result["checks"] if c["name"] == rsa["name"])["found"] == [rsa["value"]]
    domain = result["domain"]
    assert domain["status"] == "verified" and domain["verifiedAt"] is not None
    fetched = await tenant.ok("/v1/mail/domains/get", {"id": domain["id"]})
    assert fetched["domain"] == domain


async def test_after_verify_a_mailbox_can_be_created_on_the_domain(tenant, dns_server):
    added = await add_domain(tenant)
    name = added["domain"]["name"]
    before = await tenant.call("/v1/mail/mailboxes/create", {"address": f"alice@{name}"})
    assert before.status_code == 403 and before.json()["error"]["code"] == "domain_not_verified"
    dns_server.publish_all(required(added["records"]))
    await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    created = await tenant.ok("/v1/mail/mailboxes/create", {"address": f"alice@{name}"})
    assert created["mailbox"]["address"] == f"alice@{name}" and created["password"]


async def test_dkim_records_match_however_their_tags_are_spaced_or_ordered(tenant, dns_server):
    added = await add_domain(tenant)
    rsa, ed25519 = record(added["records"], "dkim", "rsa"), record(added["records"], "dkim", "ed25519")
    rsa_key, ed_key = rsa["value"].split("p=")[1], ed25519["value"].split("p=")[1]
    verification = record(added["records"], "verification")
    dns_server.publish(verification["name"], verification["value"])
    # No v= and no k= (k defaults to rsa), p= broken by spaces as some DNS consoles do.
    dns_server.publish(rsa["name"], f"p={rsa_key[:100]} {rsa_key[100:]} ;")
    dns_server.publish(ed25519["name"], f"k=ed25519;p={ed_key};v=DKIM1;t=s")
    result = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert [c["ok"] for c in result["checks"]] == [True, True, True]
    assert result["domain"]["status"] == "verified"


async def test_a_second_record_at_a_dkim_selector_fails_its_check(tenant, dns_server):
    added = await add_domain(tenant)
    dns_server.publish_all(required(added["records"]))
    ed25519 = record(added["records"], "dkim", "ed25519")
    dns_server.publish(ed25519["name"], "v=DKIM1; k=ed25519; p=c3RhbGU=")
    result = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    check = next(c for c in result["checks"] if c["name"] == ed25519["name"])
    assert not check["ok"] and len(check["found"]) == 2
    assert result["domain"]["status"] == "pending"


async def test_a_verified_domain_stays_verified_when_a_later_check_fails(tenant, dns_server):
    added = await add_domain(tenant)
    dns_server.publish_all(required(added["records"]))
    first = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    dns_server.replace(record(added["records"], "verification")["name"])  # the record was removed
    again = await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert [c["ok"] for c in again["checks"]] == [False, True, True]
    assert again["domain"]["status"] == "verified"
    assert again["domain"]["verifiedAt"] == first["domain"]["verifiedAt"]


async def test_get_returns_the_domain_and_its_records(tenant):
    added = await add_domain(tenant)
    assert await tenant.ok("/v1/mail/domains/get", {"id": added["domain"]["id"]}) == added


async def test_list_is_newest_first_with_cursor(tenant):
    ids = [(await add_domain(tenant))["domain"]["id"] for _ in range(3)]
    first = await tenant.ok("/v1/mail/domains/list", {"limit": 2})
    assert [d["id"] for d in first["domains"]] == ids[::-1][:2]
    assert all(len(d["dkimSelectors"]) == 2 for d in first["domains"])
    second = await tenant.ok("/v1/mail/domains/list", {"limit": 2, "cursor": first["nextCursor"]})
    assert [d["id"] for d in second["domains"]] == ids[:1] and second["nextCursor"] is None
    everything = await tenant.ok("/v1/mail/domains/list")
    assert [d["id"] for d in everything["domains"]] == ids[::-1]


async def test_delete_removes_the_domain_and_the_name_can_be_added_again(tenant):
    added = await add_domain(tenant)
    domain_id, name = added["domain"]["id"], added["domain"]["name"]
    assert await tenant.ok("/v1/mail/domains/delete", {"id": domain_id}) == {"ok": True}
    gone = await tenant.call("/v1/mail/domains/get", {"id": domain_id})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert domain_id not in [d["id"] for d in (await tenant.ok("/v1/mail/domains/list"))["domains"]]
    again = await tenant.call("/v1/mail/domains/delete", {"id": domain_id})
    assert again.status_code == 404
    readded = await add_domain(tenant, name)
    assert readded["domain"]["id"] != domain_id
    assert readded["records"][0]["value"] != added["records"][0]["value"]  # a new token and new keys


async def test_delete_is_refused_while_mailboxes_use_the_domain(tenant, dns_server):
    added = await add_domain(tenant)
    dns_server.publish_all(required(added["records"]))
    await tenant.ok("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    mailbox = (await tenant.ok("/v1/mail/mailboxes/create", {"address": f"bob@{added['domain']['name']}"}))["mailbox"]
    refused = await tenant.call("/v1/mail/domains/delete", {"id": added["domain"]["id"]})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "domain_in_use" and error["details"]["mailboxes"] == 1
    await tenant.ok("/v1/mail/mailboxes/delete", {"id": mailbox["id"]})
    assert await tenant.ok("/v1/mail/domains/delete", {"id": added["domain"]["id"]}) == {"ok": True}


async def test_adding_a_domain_twice_is_domain_taken(tenant):
    name = fresh_domain()
    await add_domain(tenant, name)
    again = await tenant.call("/v1/mail/domains/add", {"name": f"{name.capitalize()}."})
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "domain_taken",
        "message": "That domain has already been added.",
        "details": {"domain": name},
    }


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "not a domain",
        "a..b.example.com",
        "-lead.example.com",
        "alice@example.com",
        "localhost",
        "x" * 64 + ".example.com",
        "example.com/path",
        "[127.0.0.1]",
    ],
)
async def test_invalid_domain_names_are_400_with_the_field_path(tenant, name):
    response = await tenant.call("/v1/mail/domains/add", {"name": name})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["fields"][0]["path"] == "name"


async def test_an_invalid_name_is_explained_as_a_domain_name(tenant):
    error = (await tenant.call("/v1/mail/domains/add", {"name": "localhost"})).json()["error"]
    assert error["message"].startswith("name is not a valid domain name")
    assert error["details"]["fields"] == [{"path": "name", "message": "not a valid domain name", "value": "localhost"}]


async def test_unknown_fields_are_rejected(tenant):
    response = await tenant.call("/v1/mail/domains/add", {"name": fresh_domain(), "dkim": "off"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"] == [{"path": "dkim", "message": "unknown field"}]


async def test_another_orgs_domain_is_404_everywhere(tenant, other_tenant, dns_server):
    added = await add_domain(tenant)
    dns_server.publish_all(required(added["records"]))
    for path in ("/v1/mail/domains/get", "/v1/mail/domains/verify", "/v1/mail/domains/delete"):
        response = await other_tenant.call(path, {"id": added["domain"]["id"]})
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    listed = await other_tenant.ok("/v1/mail/domains/list")
    assert added["domain"]["id"] not in [d["id"] for d in listed["domains"]]
    ours = await tenant.ok("/v1/mail/domains/get", {"id": added["domain"]["id"]})
    assert ours["domain"]["status"] == "pending"  # their verify did not touch it


async def test_naming_another_org_is_forbidden(tenant, other_tenant):
    for path, body in [("/v1/mail/domains/list", {}), ("/v1/mail/domains/add", {"name": fresh_domain()})]:
        response = await tenant.call(path, {**body, "orgId": other_tenant.org_id})
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden_org"


async def test_dns_servfail_is_dns_unavailable_and_changes_nothing(tenant, dns_server):
    added = await add_domain(tenant)
    dns_server.publish_all(required(added["records"]))
    dns_server.fail(record(added["records"], "dkim", "ed25519")["name"])
    response = await tenant.call("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dns_unavailable"
    assert response.headers["retry-after"]
    fetched = await tenant.ok("/v1/mail/domains/get", {"id": added["domain"]["id"]})
    assert fetched["domain"]["status"] == "pending"


async def test_unreachable_dns_is_dns_unavailable_not_500(app, tenant):
    added = await add_domain(tenant)
    configured = app.state.dns_resolver
    # (not monkeypatch: its undo deletes attributes of Starlette's State instead of restoring them)
    app.state.dns_resolver = DnsTxtResolver([("127.0.0.1", unused_udp_port())], timeout_seconds=1)
    try:
        response = await tenant.call("/v1/mail/domains/verify", {"id": added["domain"]["id"]})
    finally:
        app.state.dns_resolver = configured
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "dns_unavailable"
    assert "retry-after" in response.headers


async def test_every_domain_operation_declares_its_statuses_in_openapi(http):
    paths = (await http.get("/openapi.json")).json()["paths"]
    declared = {
        verb: set(paths[f"/v1/mail/domains/{verb}"]["post"]["responses"])
        for verb in ("add", "get", "list", "verify", "delete")
    }
    assert {"200", "400", "401", "403", "409"} <= declared["add"]
    assert {"404", "503"} <= declared["verify"]
    assert {"404", "409"} <= declared["delete"]
    assert "422" not in set().union(*declared.values())
