"""SQLAlchemy tables. Rows never leave `core`; the API speaks in schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on both databases (SQLite keeps no zone, so we add it back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Domain(Base):
    __tablename__ = "domains"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    verification_token: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DkimKey(Base):
    __tablename__ = "dkim_keys"
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True)
    selector: Mapped[str] = mapped_column(String(63), primary_key=True)
    algorithm: Mapped[Literal["rsa", "ed25519"]] = mapped_column(String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[str] = mapped_column(Text)  # base64 DER, as published in p=
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Mailbox(Base):
    __tablename__ = "mailboxes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"))
    address: Mapped[str] = mapped_column(String(320), unique=True)
    local_part: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(253))
    display_name: Mapped[str | None] = mapped_column(String(200))
    assigned_user_id: Mapped[str | None] = mapped_column(String(200))
    quota_mb: Mapped[int | None] = mapped_column(Integer)
    password_hash: Mapped[str] = mapped_column(String(200))  # Dovecot's {ARGON2ID}$argon2id$…
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("org_id", "email"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """The send log: one row per send call, telling the story of the message."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key"),
        Index("ix_messages_org_id_id", "org_id", "id"),
        Index("ix_messages_status_created_at", "status", "created_at"),
        Index("ix_messages_org_id_last_event_id", "org_id", "last_event", "id"),
        Index("ix_messages_org_id_message_id", "org_id", "message_id"),  # SMTP retries find theirs by it
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    from_address: Mapped[str] = mapped_column(Text)
    to: Mapped[list[Any]] = mapped_column(default=list)
    cc: Mapped[list[Any]] = mapped_column(default=list)
    bcc: Mapped[list[Any]] = mapped_column(default=list)
    reply_to: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str] = mapped_column(String(253))
    dkim_selector: Mapped[str | None] = mapped_column(String(63))
    suppressed_recipients: Mapped[list[Any]] = mapped_column(default=list)
    rejected_recipients: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    relay_response: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # the signed bytes, so a retry relays the same message
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_event: Mapped[str | None] = mapped_column(String(16))  # the newest message_events.type
    source: Mapped[str] = mapped_column(String(8), default="api")  # "api" (HTTP) | "smtp" (submission)


class MessageEvent(Base):
    """What happened to a message, one row per happening (DESIGN.md §9): written by the send pipeline
    (sent, failed, suppressed, relay-time bounced) and by the reports that come back."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_message_id_id", "message_id", "id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(320))
    bounce_type: Mapped[str | None] = mapped_column(String(8))  # "hard" | "soft"
    smtp_status: Mapped[str | None] = mapped_column(String(16))  # "5.1.1"
    diagnostic: Mapped[str | None] = mapped_column(Text)
    report_id: Mapped[str | None] = mapped_column(String(40))  # the inbound report it came from
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundReport(Base):
    """Every report the inbound listener accepted, kept whole before it answered 250."""

    __tablename__ = "inbound_reports"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)  # its Message-ID, or sha256:<hex>
    kind: Mapped[str] = mapped_column(String(16))  # "dsn" | "arf" | "unknown"
    result: Mapped[str] = mapped_column(String(16))  # "parsed" | "unparsed"
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(40))  # the msg_… row it is about, if known
    envelope_sender: Mapped[str] = mapped_column(Text)
    envelope_recipient: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_org_id_id", "org_id", "id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(default=list)  # event types; empty: every type
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)  # whsec_…, encrypted with the secret key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookJob(Base):
    """The durable delivery queue: one row per (event, webhook) until delivered or given up.

    Queued in SQL beside the event itself (a join with the org's webhooks), so a send pays no round
    trip for it; the body is made at the first attempt and kept when an attempt fails, so every retry
    sends the same bytes.
    """

    __tablename__ = "webhook_jobs"
    __table_args__ = (Index("ix_webhook_jobs_next_attempt_at", "next_attempt_at"),)
    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))  # message.sent, suppression.created, webhook.test …
    payload: Mapped[str | None] = mapped_column(Text)  # the JSON body, once an attempt with it failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The delivery log: one row per attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
