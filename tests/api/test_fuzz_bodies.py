"""No body, however odd, gets a 500: property-based JSON bodies against every /v1/mail endpoint."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ENDPOINTS = [
    "/v1/mail/mailboxes/create",
    "/v1/mail/mailboxes/get",
    "/v1/mail/mailboxes/list",
    "/v1/mail/mailboxes/assign",
    "/v1/mail/mailboxes/delete",
    "/v1/mail/mailboxes/clientSettings",
    "/v1/mail/suppressions/add",
    "/v1/mail/suppressions/list",
    "/v1/mail/suppressions/remove",
    "/v1/mail/members/add",
    "/v1/mail/members/list",
    "/v1/mail/members/remove",
    "/v1/mail/domains/add",
    "/v1/mail/domains/get",
    "/v1/mail/domains/list",
    "/v1/mail/domains/verify",
    "/v1/mail/domains/delete",
    "/v1/mail/messages/send",
    "/v1/mail/messages/get",
    "/v1/mail/messages/list",
    "/v1/mail/messages/events",
    "/v1/mail/webhooks/create",
    "/v1/mail/webhooks/list",
    "/v1/mail/webhooks/get",
    "/v1/mail/webhooks/delete",
    "/v1/mail/webhooks/test",
    "/v1/mail/webhooks/deliveries",
]
FIELDS = [
    "address",
    "displayName",
    "assignedUserId",
    "quotaMb",
    "id",
    "orgId",
    "email",
    "reason",
    "note",
    "userId",
    "name",
    "limit",
    "cursor",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "text",
    "html",
    "headers",
    "attachments",
    "tags",
    "idempotencyKey",
    "status",
    "recipient",
    "event",
    "url",
    "events",
    "description",
    "webhookId",
    "retryUnknown",
]

odd_text = st.text(max_size=50) | st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 5000, "a@b\r\nBcc: c@d.e"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | odd_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=6) | json_values


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(ENDPOINTS), body=bodies)
@example(path="/v1/mail/domains/get", body={"id": "\u00f2\u0000"})
@example(path="/v1/mail/mailboxes/create", body={"address": "a@example.com", "displayName": "\x00"})
@example(path="/v1/mail/domains/add", body={"name": "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + ".example"})
@example(path="/v1/mail/suppressions/add", body={"email": "\ud800@example.com"})
async def test_no_body_gets_a_server_error(tenant, path, body):
    response = await tenant.call(path, body)
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) <= {"code", "message", "details"} and error["code"] and error["message"]


def test_every_mail_endpoint_is_fuzzed(app):
    documented = {path for path in app.openapi()["paths"] if path.startswith("/v1/mail/")}
    assert documented == set(ENDPOINTS)
