"""Every domain failure is one OrgmailError subclass; `api.errors` maps them to HTTP in one place."""

from __future__ import annotations

from typing import Any


class OrgmailError(Exception):
    code: str = "internal_error"
    status: int = 500
    message: str = "Something went wrong."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details


class InvalidRequest(OrgmailError):
    code, status, message = "invalid_request", 400, "The request is not valid."


class Unauthorized(OrgmailError):
    code, status, message = "unauthorized", 401, "A valid API key is required."


class ForbiddenOrg(OrgmailError):
    code, status, message = "forbidden_org", 403, "This API key cannot act on that organization."


class NotFound(OrgmailError):
    code, status, message = "not_found", 404, "No such resource."


class MemberNotFound(OrgmailError):
    code, status, message = "member_not_found", 404, "That user is not a member of the organization."


class DomainNotFound(OrgmailError):
    code, status, message = "domain_not_found", 400, "That domain has not been added to the organization."


class DomainNotVerified(OrgmailError):
    code, status, message = "domain_not_verified", 403, "That domain has not been verified yet."


class DomainTaken(OrgmailError):
    code, status, message = "domain_taken", 409, "That domain has already been added."


class MailboxTaken(OrgmailError):
    code, status, message = "mailbox_taken", 409, "A mailbox with that address already exists."


class MemberTaken(OrgmailError):
    code, status, message = "member_taken", 409, "That user is already a member."


class IdempotencyConflict(OrgmailError):
    code, status, message = (
        "idempotency_conflict",
        409,
        "That idempotency key was used with a different request.",
    )


class MessageTooLarge(OrgmailError):
    code, status, message = "message_too_large", 413, "The message is larger than the limit."


class AllRecipientsSuppressed(OrgmailError):
    code, status, message = (
        "all_recipients_suppressed",
        422,
        "Every recipient is on the suppression list; nothing was sent.",
    )


class RateLimited(OrgmailError):
    code, status, message = "rate_limited", 429, "Too many requests; slow down."


class RelayRejected(OrgmailError):
    code, status, message = "relay_rejected", 502, "The relay refused every recipient."


class RelayUnavailable(OrgmailError):
    code, status, message = "relay_unavailable", 503, "The relay could not be reached; try again."


class RelayOutcomeUnknown(OrgmailError):
    code, status, message = (
        "relay_outcome_unknown",
        504,
        "The connection to the relay was lost after the whole message was sent, before the relay "
        "answered: it may or may not have the message. A retry with the same idempotency key relays "
        'nothing unless the body adds "retryUnknown": true (which may deliver it twice).',
    )


class Unavailable(OrgmailError):
    code, status, message = "unavailable", 503, "The database cannot be reached; try again shortly."


class DomainInUse(OrgmailError):
    code, status, message = (
        "domain_in_use",
        409,
        "Mailboxes still use that domain; delete them first.",
    )


class DnsUnavailable(OrgmailError):
    code, status, message = "dns_unavailable", 503, "DNS could not be queried; try again shortly."


class SenderNotAllowed(OrgmailError):
    code, status, message = "sender_not_allowed", 403, "A mailbox may send only From (and Sender) its own address."


class RecipientSuppressed(OrgmailError):
    code, status, message = "recipient_suppressed", 422, "The organization suppresses that recipient."
