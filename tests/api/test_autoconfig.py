"""Thunderbird autoconfig and mailboxes/clientSettings: the servers a member's mail client connects to."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from tests.conftest import add_domain_row

WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTOCONFIG_HOST_FORM = "/mail/config-v1.1.xml"


@pytest.fixture
def mail_edge(app, settings):
    """The app answering as a deployment with a mail host, IMAP on 10993 and both submission listeners."""
    app.state.settings = replace(
        settings,
        mail_host="mail.example.net",
        imap_port=10993,
        submission_listen=("0.0.0.0", 10587),
        submission_tls_listen=("0.0.0.0", 10465),
    )
    yield app.state.settings
    app.state.settings = settings


def _servers(document: ET.Element, kind: str) -> list[tuple[str | None, ...]]:
    return [
        tuple(server.findtext(name) for name in ("hostname", "port", "socketType", "username", "authentication"))
        for server in document.iter(kind)
    ]


@pytest.mark.parametrize("path", [WELL_KNOWN, AUTOCONFIG_HOST_FORM])
async def test_autoconfig_lists_imap_and_each_submission_listener(http, verified_domain, mail_edge, path):
    response = await http.get(path, params={"emailaddress": f"alice@{verified_domain}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    document = ET.fromstring(response.content)
    assert document.tag == "clientConfig" and document.get("version") == "1.1"
    provider = document.find("emailProvider")
    assert provider is not None and provider.get("id") == verified_domain
    assert provider.findtext("domain") == verified_domain
    [imap] = [server for server in document.iter("incomingServer")]
    assert imap.get("type") == "imap"
    assert _servers(document, "incomingServer") == [
        ("mail.example.net", "10993", "SSL", "%EMAILADDRESS%", "password-cleartext")
    ]
    assert [server.get("type") for server in document.iter("outgoingServer")] == ["smtp", "smtp"]
    assert _servers(document, "outgoingServer") == [
        ("mail.example.net", "10465", "SSL", "%EMAILADDRESS%", "password-cleartext"),
        ("mail.example.net", "10587", "STARTTLS", "%EMAILADDRESS%", "password-cleartext"),
    ]


async def test_autoconfig_without_mail_host_names_the_request_host_and_no_submission_when_off(http, verified_domain):
    response = await http.get(WELL_KNOWN, params={"emailaddress": f"Bob@{verified_domain.upper()}"})
    assert response.status_code == 200
    document = ET.fromstring(response.content)
    assert _servers(document, "incomingServer") == [
        ("orgmail.test", "993", "SSL", "%EMAILADDRESS%", "password-cleartext")
    ]
    assert _servers(document, "outgoingServer") == []


@pytest.mark.parametrize("address", ["alice@nowhere.example", "not-an-address", "", "@", "alice@"])
async def test_autoconfig_for_a_domain_nobody_serves_is_a_bare_404(http, address):
    response = await http.get(WELL_KNOWN, params={"emailaddress": address})
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such resource."}}


async def test_autoconfig_for_a_pending_domain_is_404(app, http, tenant):
    pending = await add_domain_row(app, tenant.org_id, verified=False)
    response = await http.get(AUTOCONFIG_HOST_FORM, params={"emailaddress": f"alice@{pending}"})
    assert response.status_code == 404


async def test_autoconfig_is_not_in_the_openapi_document(http):
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert WELL_KNOWN not in paths and AUTOCONFIG_HOST_FORM not in paths


async def test_client_settings_name_the_servers_the_address_and_the_autoconfig_url(tenant, verified_domain, mail_edge):
    created = await tenant.ok("/v1/mail/mailboxes/create", {"address": f"carol@{verified_domain}"})
    mailbox = created["mailbox"]
    found = await tenant.ok("/v1/mail/mailboxes/clientSettings", {"id": mailbox["id"]})
    assert found == {
        "username": f"carol@{verified_domain}",
        "imap": {"host": "mail.example.net", "port": 10993, "security": "tls"},
        "submission": [
            {"host": "mail.example.net", "port": 10465, "security": "tls"},
            {"host": "mail.example.net", "port": 10587, "security": "starttls"},
        ],
        "autoconfigUrl": f"http://orgmail.test{WELL_KNOWN}?emailaddress=carol%40{verified_domain}",
    }
    assert created["password"] not in str(found)


async def test_client_settings_autoconfig_url_answers(tenant, http, verified_domain):
    created = await tenant.ok("/v1/mail/mailboxes/create", {"address": f"dave@{verified_domain}"})
    found = await tenant.ok("/v1/mail/mailboxes/clientSettings", {"id": created["mailbox"]["id"]})
    assert found["submission"] == []
    response = await http.get(found["autoconfigUrl"])
    assert response.status_code == 200
    assert ET.fromstring(response.content).find("emailProvider").get("id") == verified_domain


async def test_client_settings_of_another_orgs_mailbox_is_404(tenant, other_tenant, verified_domain):
    created = await tenant.ok("/v1/mail/mailboxes/create", {"address": f"erin@{verified_domain}"})
    response = await other_tenant.call("/v1/mail/mailboxes/clientSettings", {"id": created["mailbox"]["id"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    forbidden = await other_tenant.call(
        "/v1/mail/mailboxes/clientSettings", {"id": created["mailbox"]["id"], "orgId": tenant.org_id}
    )
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden_org"


async def test_client_settings_need_a_key_and_reject_unknown_fields(http, tenant):
    assert (await http.post("/v1/mail/mailboxes/clientSettings", json={"id": "mbx_x"})).status_code == 401
    response = await tenant.call("/v1/mail/mailboxes/clientSettings", {"id": "mbx_x", "extra": 1})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
