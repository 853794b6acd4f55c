"""Pydantic models for the DESIGN.md types: camelCase on the wire, unknown fields rejected.

Named by role: `…Input` comes in, the bare noun is what any reader sees, `MailboxCreated` is the one
answer that carries a password.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# Control characters (C0 and C1) never belong in these fields (and PostgreSQL refuses NUL in text outright).
SINGLE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"  # tabs and line breaks allowed

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SINGLE_LINE)]
ShortText = Annotated[str, StringConstraints(max_length=200, pattern=SINGLE_LINE)]
EmailText = Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=SINGLE_LINE)]
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[!-9;-~]+$")]
HeaderValue = Annotated[str, StringConstraints(max_length=998, pattern=r"^[^\x00-\x08\x0a-\x1f\x7f-\x9f]*$")]
Body = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
Cursor = Annotated[str, StringConstraints(max_length=200, pattern=SINGLE_LINE)]
Note = Annotated[str, StringConstraints(max_length=1000, pattern=MULTI_LINE)]


class Schema(BaseModel):
    """What we answer: built from rows by attribute name, written out in camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        from_attributes=True,
        json_schema_serialization_defaults_required=True,
    )


class Input(BaseModel):
    """What comes in: camelCase names only, no unknown fields, no type coercion ("7" is not 7)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        extra="forbid",
        strict=True,
    )


class OrgScoped(Input):
    org_id: Id | None = Field(default=None, description="Defaults to the API key's org.")


class PageInput(Input):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Cursor | None = None


class ListInput(PageInput, OrgScoped):
    pass


class ByIdInput(OrgScoped):
    id: Id


class Ok(Schema):
    ok: Literal[True] = True


# --- errors ---------------------------------------------------------------------------------------
class ErrorBody(Schema):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        json_schema_serialization_defaults_required=False,  # details is left out when there are none
    )
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(Schema):
    error: ErrorBody


# --- orgs and keys (admin) -----------------------------------------------------------------------
class Org(Schema):
    id: str
    name: str
    created_at: datetime


class OrgCreateInput(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=SINGLE_LINE)]


class OrgCreated(Schema):
    org: Org


class OrgList(Schema):
    orgs: list[Org]
    next_cursor: str | None


class AdminListInput(PageInput):
    pass


class ApiKey(Schema):
    id: str
    org_id: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreateInput(Input):
    org_id: Id
    name: ShortText | None = None


class ApiKeyCreated(Schema):
    api_key: ApiKey
    key: str = Field(description="The secret, shown once.")


class ApiKeyRevokeInput(Input):
    id: Id


# --- members -------------------------------------------------------------------------------------
class Member(Schema):
    user_id: str
    org_id: str
    email: str | None
    name: str | None
    created_at: datetime


class MemberAddInput(OrgScoped):
    user_id: Id
    email: EmailText | None = None
    name: ShortText | None = None


class MemberRemoveInput(OrgScoped):
    user_id: Id


class MemberAdded(Schema):
    member: Member


class MemberList(Schema):
    members: list[Member]
    next_cursor: str | None


# --- domains -------------------------------------------------------------------------------------
class Domain(Schema):
    id: str
    org_id: str
    name: str
    status: Literal["pending", "verified"]
    dkim_selectors: list[str]
    verified_at: datetime | None
    created_at: datetime


class DnsRecord(Schema):
    type: Literal["TXT"]
    name: str
    value: str
    purpose: Literal["verification", "dkim", "spf", "dmarc"]
    required: bool


class DomainAddInput(OrgScoped):
    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=SINGLE_LINE)]


class DomainWithRecords(Schema):
    domain: Domain
    records: list[DnsRecord]


class DomainList(Schema):
    domains: list[Domain]
    next_cursor: str | None


class DnsCheck(Schema):
    name: str
    expected: str
    found: list[str]
    ok: bool


class DomainVerified(Schema):
    domain: Domain
    checks: list[DnsCheck]


# --- mailboxes -----------------------------------------------------------------------------------
class Mailbox(Schema):
    id: str
    org_id: str
    address: str
    local_part: str
    domain: str
    display_name: str | None
    assigned_user_id: str | None
    quota_mb: int | None
    created_at: datetime
    updated_at: datetime


class MailboxCreateInput(OrgScoped):
    address: EmailText
    display_name: ShortText | None = None
    assigned_user_id: Id | None = None
    quota_mb: int | None = Field(default=None, ge=1, le=1_048_576)


class MailboxCreated(Schema):
    mailbox: Mailbox
    password: str = Field(description="Shown once; only a hash is stored.")


class MailboxAssignInput(OrgScoped):
    id: Id
    assigned_user_id: Id | None


class MailboxOut(Schema):
    mailbox: Mailbox


class MailboxList(Schema):
    mailboxes: list[Mailbox]
    next_cursor: str | None


class MailServer(Schema):
    host: str
    port: int
    security: Literal["tls", "starttls"] = Field(
        description="`tls`: implicit TLS from the first byte; `starttls`: STARTTLS after connecting."
    )


class ClientSettings(Schema):
    """What a member types into a mail client for this mailbox; the password is the mailbox's own."""

    username: str = Field(description="The full address, for IMAP and submission alike.")
    imap: MailServer
    submission: list[MailServer] = Field(description="Each SMTP submission listener that is on, implicit TLS first.")
    autoconfig_url: str = Field(description="The Thunderbird autoconfig document orgmail serves for this address.")


# --- suppressions --------------------------------------------------------------------------------
SuppressionReason = Literal["manual", "bounce", "complaint", "unsubscribe"]


class Suppression(Schema):
    id: str
    org_id: str
    email: str
    reason: SuppressionReason
    note: str | None
    created_at: datetime


class SuppressionAddInput(OrgScoped):
    email: EmailText
    reason: SuppressionReason = "manual"
    note: Note | None = None


class SuppressionRemoveInput(OrgScoped):
    email: EmailText


class SuppressionOut(Schema):
    suppression: Suppression


class SuppressionList(Schema):
    suppressions: list[Suppression]
    next_cursor: str | None


# --- messages ------------------------------------------------------------------------------------
MessageStatus = Literal["queued", "sent", "failed", "bounced", "suppressed"]
MessageEventType = Literal["sent", "failed", "suppressed", "delivered", "deferred", "bounced", "complained"]


class RejectedRecipient(Schema):
    email: str
    code: int
    message: str


class MessageError(Schema):
    code: str
    message: str


class MailMessage(Schema):
    id: str
    org_id: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: list[str]
    subject: str
    status: MessageStatus
    message_id: str
    domain: str
    dkim_selector: str | None
    suppressed_recipients: list[str]
    tags: dict[str, str]
    size_bytes: int
    rejected_recipients: list[RejectedRecipient]
    relay_response: str | None
    error: MessageError | None
    created_at: datetime
    sent_at: datetime | None
    last_event: MessageEventType | None = Field(description="The type of the message's newest event.")
    source: Literal["api", "smtp"] = Field(description="How the message came in: the HTTP API or SMTP submission.")


class MessageEvent(Schema):
    id: str
    org_id: str
    message_id: str = Field(description="The msg_… row the event is about.")
    type: MessageEventType
    recipient: str | None
    bounce_type: Literal["hard", "soft"] | None
    smtp_status: str | None = Field(description='The enhanced status code, e.g. "5.1.1".')
    diagnostic: str | None
    created_at: datetime


class MessageEventList(Schema):
    events: list[MessageEvent]


class Attachment(Input):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=SINGLE_LINE)]
    content: str = Field(description="base64")
    content_type: Annotated[str, StringConstraints(max_length=255, pattern=SINGLE_LINE)] | None = None
    content_id: Annotated[str, StringConstraints(max_length=255, pattern=SINGLE_LINE)] | None = None


class MailSendInput(OrgScoped):
    from_: Annotated[str, StringConstraints(min_length=3, max_length=400, pattern=SINGLE_LINE)] = Field(alias="from")
    to: EmailText | list[EmailText]
    cc: list[EmailText] = Field(default_factory=list)
    bcc: list[EmailText] = Field(default_factory=list)
    reply_to: EmailText | list[EmailText] | None = None
    subject: Annotated[str, StringConstraints(max_length=998, pattern=SINGLE_LINE)]
    text: Body | None = None
    html: Body | None = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)
    tags: dict[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)], ShortText] = Field(
        default_factory=dict
    )
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=SINGLE_LINE)] | None = None
    retry_unknown: bool = Field(
        default=False,
        description="Relay again a message whose earlier outcome is unknown (504 relay_outcome_unknown): "
        "it may be delivered twice. Not part of the idempotency fingerprint.",
    )


class MessageOut(Schema):
    message: MailMessage


class MessageListInput(ListInput):
    status: MessageStatus | None = None
    recipient: EmailText | None = None
    event: MessageEventType | None = Field(default=None, description="Only messages whose newest event is this.")


class MessageList(Schema):
    messages: list[MailMessage]
    next_cursor: str | None


# --- webhooks ------------------------------------------------------------------------------------
WebhookEventType = Literal[
    "message.sent",
    "message.failed",
    "message.suppressed",
    "message.delivered",
    "message.deferred",
    "message.bounced",
    "message.complained",
    "suppression.created",
    "webhook.test",
]
WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=SINGLE_LINE)]


class Webhook(Schema):
    id: str
    org_id: str
    url: str
    events: list[str] = Field(description="The event types it receives (every type when created without a list).")
    description: str | None
    enabled: bool
    created_at: datetime


class WebhookCreateInput(OrgScoped):
    url: WebhookUrl = Field(
        description="http(s); its host must not be, or resolve to, a loopback, private, link-local, multicast, "
        "unspecified or reserved address (unless the service allows private destinations)."
    )
    events: Annotated[list[WebhookEventType], Field(min_length=1)] | None = Field(
        default=None,
        description="Default: every type, including types added later. `webhook.test` is accepted but filters "
        "nothing: `webhooks/test` always delivers.",
    )
    description: Note | None = None


class WebhookCreated(Schema):
    webhook: Webhook
    secret: str = Field(description="whsec_…, shown once: the key that verifies the signatures (Standard Webhooks).")


class WebhookOut(Schema):
    webhook: Webhook


class WebhookList(Schema):
    webhooks: list[Webhook]
    next_cursor: str | None


class WebhookDelivery(Schema):
    id: str
    webhook_id: str
    event_id: str = Field(description="The evt_… id, sent as the webhook-id header (the same on every attempt).")
    event_type: str
    attempt: int = Field(description="1, 2, …")
    status_code: int | None = Field(description="The endpoint's answer; null when there was none.")
    duration_ms: int | None
    error: str | None = Field(description="What went wrong; null when the endpoint answered 2xx.")
    next_attempt_at: datetime | None = Field(description="When it is tried again; null: delivered or given up.")
    created_at: datetime


class WebhookDeliveriesInput(PageInput, OrgScoped):
    webhook_id: Id


class WebhookDeliveryList(Schema):
    deliveries: list[WebhookDelivery]
    next_cursor: str | None
