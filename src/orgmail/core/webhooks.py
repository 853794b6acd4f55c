"""An org's webhooks (DESIGN.md §9): create (the secret shown once), list, get, delete, test, the
delivery log, and queueing an event for the webhooks that want it. `webhook_dispatcher` delivers.

Choices a user will notice:
- `events` left out means every type, including types added later (stored as the empty list, which
  is what the send log's queueing SQL reads as "all"); a webhook shows them expanded to today's list.
- `webhook.test` may be listed (so "every type the documentation names" is a valid list), but it
  filters nothing: `webhooks/test` delivers to the one webhook it names whatever it subscribes to.
- A URL is checked at create (http or https; its host not loopback, private, link-local, multicast,
  unspecified or reserved, nor a name resolving to one) and again at every delivery, since DNS can
  change. A host that does not resolve at create is accepted: its deliveries fail until it does.
- Deleting a webhook deletes its queued deliveries and its delivery log with it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from orgmail.core.events import MessageEventView
from orgmail.core.messages import MessageView
from orgmail.core.pages import Page, newest_first
from orgmail.core.views import copied
from orgmail.db.session import affected_rows
from orgmail.db.tables import Webhook, WebhookDelivery, WebhookJob, utcnow
from orgmail.errors import InvalidRequest, NotFound
from orgmail.ids import new_id
from orgmail.mail import webhook_client
from orgmail.mail.dkim import KeyVault

MESSAGE_EVENT_TYPES = ("sent", "failed", "suppressed", "delivered", "deferred", "bounced", "complained")
SUPPRESSION_CREATED = "suppression.created"
WEBHOOK_TEST = "webhook.test"
EVENT_TYPES = (*(f"message.{kind}" for kind in MESSAGE_EVENT_TYPES), SUPPRESSION_CREATED, WEBHOOK_TEST)


@dataclass(frozen=True, slots=True)
class WebhookView:
    """A webhook as any reader of its org sees it: never its secret."""

    id: str
    org_id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Webhook) -> WebhookView:
        return cls(
            id=row.id,
            org_id=row.org_id,
            url=row.url,
            events=list(row.events) or list(EVENT_TYPES),
            description=row.description,
            enabled=row.enabled,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    """The one answer that carries the secret."""

    webhook: WebhookView
    secret: str


@dataclass(frozen=True, slots=True)
class WebhookDeliveryView:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None
    duration_ms: int | None
    error: str | None
    next_attempt_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookDelivery) -> WebhookDeliveryView:
        return copied(cls, row)


@dataclass(frozen=True, slots=True)
class SuppressionView:
    """The suppression a `suppression.created` event carries."""

    id: str
    org_id: str
    email: str
    reason: str
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> SuppressionView:
        """The view of a `suppressions` row: the same columns, copied by name."""
        return copied(cls, row)


class EventData(Protocol):
    """The `data` of each event's body as JSON text, in the API's own shapes (the API layer provides
    it, so a webhook's MailMessage is the one `messages/get` answers, not a copy that could drift)."""

    def message_event(self, event: MessageEventView, message: MessageView) -> str:
        """`{event: MessageEvent, message: MailMessage}`"""
        ...

    def suppression_created(self, suppression: SuppressionView) -> str:
        """`{suppression: MailSuppression}`"""
        ...

    def webhook_test(self, webhook_id: str) -> str:
        """`{webhookId}`"""
        ...


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the form Standard Webhooks libraries take."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _invalid(path: str, message: str, sentence: str) -> InvalidRequest:
    return InvalidRequest(sentence, details={"fields": [{"path": path, "message": message}]})


def wanted_events(events: Sequence[str] | None) -> list[str]:
    """The event types to store: each known and once, in the order given; None is every type ([])."""
    if events is None:
        return []
    if not events:
        raise _invalid("events", "list at least one type, or leave it out for all", "events is empty.")
    for index, event in enumerate(events):
        if event not in EVENT_TYPES:
            raise _invalid(
                f"events.{index}",
                f"unknown event type; expected one of {', '.join(EVENT_TYPES)}",
                "Unknown event type.",
            )
    return list(dict.fromkeys(events))


async def check_url(url: str, *, allow_private: bool) -> None:
    """400 naming `url` unless webhooks may be delivered there (see the module's docstring)."""
    problem = webhook_client.url_problem(url) or await webhook_client.destination_problem(
        url, allow_private=allow_private
    )
    if problem is not None:
        raise _invalid("url", problem, f"The webhook URL cannot be used: {problem}.")


async def create_webhook(
    session: AsyncSession,
    *,
    org_id: str,
    url: str,
    events: Sequence[str] | None = None,
    description: str | None = None,
    vault: KeyVault,
    allow_private: bool,
) -> CreatedWebhook:
    stored_events = wanted_events(events)
    await check_url(url, allow_private=allow_private)
    secret = new_secret()
    row = Webhook(
        id=new_id("whk"),
        org_id=org_id,
        url=url,
        events=stored_events,
        description=description,
        enabled=True,
        secret_encrypted=vault.encrypt(secret.encode()),
        created_at=utcnow(),
    )
    async with session.begin():
        session.add(row)
    return CreatedWebhook(WebhookView.of(row), secret)


async def _owned(session: AsyncSession, *, org_id: str, webhook_id: str) -> Webhook:
    row = await session.scalar(select(Webhook).where(Webhook.org_id == org_id, Webhook.id == webhook_id))
    if row is None:
        raise NotFound("No such webhook.")
    return row


async def get_webhook(session: AsyncSession, *, org_id: str, webhook_id: str) -> WebhookView:
    return WebhookView.of(await _owned(session, org_id=org_id, webhook_id=webhook_id))


async def list_webhooks(
    session: AsyncSession, *, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[WebhookView]:
    query = select(Webhook).where(Webhook.org_id == org_id)
    page = await newest_first(session, query, Webhook.id, limit=limit, cursor=cursor)
    return Page([WebhookView.of(row) for row in page.items], page.next_cursor)


async def delete_webhook(session: AsyncSession, *, org_id: str, webhook_id: str) -> None:
    """The webhook, its queued deliveries and its delivery log (the foreign keys cascade)."""
    async with session.begin():
        result = await session.execute(delete(Webhook).where(Webhook.org_id == org_id, Webhook.id == webhook_id))
        if affected_rows(result) == 0:
            raise NotFound("No such webhook.")


async def send_test_event(session: AsyncSession, *, org_id: str, webhook_id: str) -> str:
    """Queue a `webhook.test` event for this webhook only, whatever it subscribes to; its event id."""
    async with session.begin():
        await _owned(session, org_id=org_id, webhook_id=webhook_id)
        event_id, now = new_id("evt"), utcnow()
        await session.execute(
            insert(WebhookJob).values(
                event_id=event_id,
                webhook_id=webhook_id,
                org_id=org_id,
                event_type=WEBHOOK_TEST,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return event_id


async def list_deliveries(
    session: AsyncSession, *, org_id: str, webhook_id: str, limit: int = 50, cursor: str | None = None
) -> Page[WebhookDeliveryView]:
    """The webhook's attempts, newest first; another org's webhook is 404."""
    await _owned(session, org_id=org_id, webhook_id=webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.org_id == org_id, WebhookDelivery.webhook_id == webhook_id)
    page = await newest_first(session, query, WebhookDelivery.id, limit=limit, cursor=cursor)
    return Page([WebhookDeliveryView.of(row) for row in page.items], page.next_cursor)


def suppression_event_id(suppression_id: str) -> str:
    """The stable event id of a suppression's `suppression.created`: sup_01ABC → evt_01ABC."""
    return "evt_" + suppression_id.partition("_")[2]


def suppression_of_event(event_id: str) -> str:
    """The suppression a `suppression.created` event id names: evt_01ABC → sup_01ABC."""
    return "sup_" + event_id.partition("_")[2]
