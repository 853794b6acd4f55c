"""Auth and the error contract: 401 for bad keys, the error shape for every failure, no 500s."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN_TOKEN


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic abc", "Bearer omk_01ABC_wrongsecret"])
async def test_missing_or_invalid_key_is_401(http, header):
    headers = {"Authorization": header} if header else {}
    response = await http.post("/v1/mail/mailboxes/list", json={}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "A valid API key is required."}}


async def test_right_key_id_with_wrong_secret_is_401(tenant):
    forged = tenant.key[: len("omk_") + 26] + "_" + "x" * 43  # the real key id, another secret
    assert forged != tenant.key
    response = await tenant.http.post("/v1/mail/members/list", json={}, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_revoked_key_is_401(http, tenant):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = await http.post("/v1/admin/keys/create", json={"orgId": tenant.org_id, "name": "temp"}, headers=admin)
    assert created.status_code == 200
    body = created.json()
    key = body["key"]
    assert body["apiKey"]["orgId"] == tenant.org_id and key.startswith("omk_")
    assert (
        await http.post("/v1/mail/members/list", json={}, headers={"Authorization": f"Bearer {key}"})
    ).status_code == 200
    revoked = await http.post("/v1/admin/keys/revoke", json={"id": body["apiKey"]["id"]}, headers=admin)
    assert revoked.json() == {"ok": True}
    assert (
        await http.post("/v1/mail/members/list", json={}, headers={"Authorization": f"Bearer {key}"})
    ).status_code == 401


async def test_admin_creates_orgs_and_acts_on_any_org_by_org_id(http, tenant):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    org = (await http.post("/v1/admin/orgs/create", json={"name": "Initech"}, headers=admin)).json()["org"]
    assert org["id"].startswith("org_") and org["name"] == "Initech"
    listed = (await http.post("/v1/admin/orgs/list", json={"limit": 200}, headers=admin)).json()
    assert org["id"] in [o["id"] for o in listed["orgs"]]
    added = await http.post("/v1/mail/members/add", json={"orgId": org["id"], "userId": "u"}, headers=admin)
    assert added.status_code == 200 and added.json()["member"]["orgId"] == org["id"]
    no_org = await http.post("/v1/mail/members/list", json={}, headers=admin)
    assert no_org.status_code == 400 and no_org.json()["error"]["details"]["fields"][0]["path"] == "orgId"
    unknown = await http.post("/v1/mail/members/list", json={"orgId": "org_nope"}, headers=admin)
    assert unknown.status_code == 404


async def test_api_key_cannot_call_admin_endpoints(tenant):
    response = await tenant.call("/v1/admin/orgs/list", {})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b"[]",
        b"null",
        b'"text"',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe",
    ],
    ids=["truncated", "text", "array", "null", "string", "deep-array", "deep-object", "not-utf8"],
)
async def test_malformed_bodies_are_invalid_request(tenant, raw):
    response = await tenant.http.post(
        "/v1/mail/mailboxes/create",
        content=raw,
        headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"


async def test_unknown_fields_are_rejected_with_their_path(tenant):
    response = await tenant.call("/v1/mail/suppressions/add", {"email": "a@example.com", "colour": "red"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"] == [{"path": "colour", "message": "unknown field"}]


async def test_wrong_types_are_invalid_request(tenant):
    response = await tenant.call("/v1/mail/mailboxes/list", {"limit": "many"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"][0]["path"] == "limit"
    too_many = await tenant.call("/v1/mail/mailboxes/list", {"limit": 201})
    assert too_many.status_code == 400


async def test_bad_cursor_is_invalid_request(tenant):
    response = await tenant.call("/v1/mail/mailboxes/list", {"cursor": "%%%"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


async def test_oversized_body_is_413_without_reading_it_all(app, tenant):
    limit = app.state.settings.max_request_bytes
    body = json.dumps({"email": "a@example.com", "note": "x" * (limit + 10)}).encode()
    response = await tenant.http.post(
        "/v1/mail/suppressions/add",
        content=body,
        headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "message_too_large"

    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(limit // 65536 + 50):
            sent += 65536
            yield b"x" * 65536

    streamed = await tenant.http.post(
        "/v1/mail/suppressions/add",
        content=chunks(),
        headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert sent <= limit + 2 * 65536  # the reader stopped at the limit, not at the end of the stream


async def test_unknown_endpoint_and_wrong_method_use_the_error_shape(tenant):
    missing = await tenant.call("/v1/mail/nothing/here", {})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = await tenant.http.get("/v1/mail/mailboxes/list")
    assert wrong.status_code == 405 and "error" in wrong.json()
    assert wrong.headers["allow"] == "POST"


async def test_health_ready_metrics_and_openapi(http):
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ok"}
    metrics = await http.get("/metrics")
    assert "orgmail_http_requests" in metrics.text
    schema = (await http.get("/openapi.json")).json()
    create = schema["paths"]["/v1/mail/mailboxes/create"]["post"]
    assert {"400", "401", "403", "404", "409", "413", "503"} <= set(create["responses"])
    assert "422" not in create["responses"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][body_ref]["additionalProperties"] is False
    assert (await http.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/mail/mailboxes/get", {"id": "mbx_\u0000"}, "id"),
        ("/v1/mail/members/add", {"userId": "u\u0000"}, "userId"),
        ("/v1/mail/members/add", {"userId": "u", "name": "a\u0000b"}, "name"),
        ("/v1/mail/suppressions/add", {"email": "a@example.com", "note": "x\u0000"}, "note"),
        ("/v1/mail/mailboxes/create", {"address": "a@example.com", "displayName": "A\r\nBcc: x@y.z"}, "displayName"),
        ("/v1/mail/domains/get", {"id": "\u00f2\u0000"}, "id"),
    ],
)
async def test_control_characters_are_invalid_request_on_both_databases(tenant, path, body, field):
    response = await tenant.call(path, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["fields"][0]["path"] == field


async def test_inputs_take_camel_case_names_and_exact_types_only(tenant):
    snake = await tenant.call("/v1/mail/members/add", {"user_id": "u-snake"})
    assert snake.status_code == 400
    coerced = await tenant.call("/v1/mail/mailboxes/list", {"limit": "7"})
    assert coerced.status_code == 400 and coerced.json()["error"]["details"]["fields"][0]["path"] == "limit"


async def test_admin_api_is_off_without_the_admin_token(settings):
    from dataclasses import replace

    import httpx

    from orgmail.app import create_app

    app = create_app(replace(settings, admin_token=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orgmail.test") as http:
        response = await http.post("/v1/admin/orgs/list", json={}, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404


async def test_a_body_without_content_type_is_read_as_json(tenant):
    response = await tenant.http.post(
        "/v1/mail/members/add",
        content=b'{"userId": "curl-user"}',
        headers={"Authorization": f"Bearer {tenant.key}"},
    )
    assert response.status_code == 200, response.text
