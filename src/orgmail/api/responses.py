"""OpenAPI declarations of the error statuses each operation can answer."""

from __future__ import annotations

from typing import Any

from orgmail.api.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "invalid_request, or domain_not_found",
    401: "unauthorized",
    403: "forbidden_org, or domain_not_verified",
    404: "not_found, or member_not_found",
    409: "mailbox_taken, member_taken, domain_taken, domain_in_use or idempotency_conflict",
    413: "message_too_large",
    422: "all_recipients_suppressed",
    429: "rate_limited",
    500: "internal_error",
    502: "relay_rejected",
    503: "unavailable (database), relay_unavailable or dns_unavailable, with Retry-After",
    504: "relay_outcome_unknown",
}

# Every operation can meet a malformed body, a bad key, an oversized body, the rate limit, a database outage.
COMMON = (400, 401, 413, 429, 500, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in sorted(set(COMMON) | set(statuses))
    }
