"""/v1/mail/messages/*: send (the pipeline in `core.sending`), get and list (the send log)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from orgmail.api.deps import Caller, DbSession, SendDeps, org_scope
from orgmail.api.responses import errors
from orgmail.api.schemas import (
    ByIdInput,
    MailMessage,
    MailSendInput,
    MessageError,
    MessageEvent,
    MessageEventList,
    MessageList,
    MessageListInput,
    MessageOut,
)
from orgmail.core import messages, sending
from orgmail.core.events import list_events
from orgmail.core.messages import MessageView
from orgmail.errors import InvalidRequest

router = APIRouter(prefix="/v1/mail/messages", tags=["messages"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="The same as `idempotencyKey` in the body."),
]


@router.post("/send", responses=errors(403, 404, 409, 422, 502, 504))
async def send(
    body: MailSendInput,
    context: SendDeps,
    idempotency_key: IdempotencyKeyHeader = None,
) -> MessageOut:
    """DKIM-sign and relay one message; answers the send-log row (`sent`).

    503 `relay_unavailable` names the `failed` row in `details.messageId`: retry with the same
    idempotency key and the same message is relayed once. 502: the relay refused every recipient.
    504 `relay_outcome_unknown`: the relay read the whole message but its answer was lost; a retry
    with the same key relays nothing unless it adds `"retryUnknown": true`.
    """
    org_id = await org_scope(context.session, context.caller, body.org_id)
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidRequest(
            "idempotencyKey and the Idempotency-Key header differ.",
            details={"fields": [{"path": "idempotencyKey", "message": "differs from the Idempotency-Key header"}]},
        )
    message = await context.pipeline.send(
        context.session,
        org_id=org_id,
        request=_send_request(body),
        idempotency_key=body.idempotency_key or idempotency_key,
        retry_unknown=body.retry_unknown,
    )
    return MessageOut(message=mail_message(message))


@router.post("/get", responses=errors(403, 404))
async def get(body: ByIdInput, caller: Caller, session: DbSession) -> MessageOut:
    org_id = await org_scope(session, caller, body.org_id)
    found = await messages.get_message(session, org_id=org_id, message_id=body.id)
    return MessageOut(message=mail_message(found))


@router.post("/events", responses=errors(403, 404))
async def events(body: ByIdInput, caller: Caller, session: DbSession) -> MessageEventList:
    """The message's timeline, oldest first: sent, failed, suppressed, and what reports said since."""
    org_id = await org_scope(session, caller, body.org_id)
    found = await list_events(session, org_id=org_id, message_id=body.id)
    return MessageEventList(events=[MessageEvent.model_validate(event) for event in found])


@router.post("/list", responses=errors(403, 404))
async def list_(caller: Caller, session: DbSession, body: MessageListInput | None = None) -> MessageList:
    """Newest first; `status` and `recipient` (any of To, Cc, Bcc) narrow the list."""
    body = body or MessageListInput()
    org_id = await org_scope(session, caller, body.org_id)
    page = await messages.list_messages(
        session,
        org_id=org_id,
        status=body.status,
        recipient=body.recipient,
        event=body.event,
        limit=body.limit,
        cursor=body.cursor,
    )
    return MessageList(messages=[mail_message(item) for item in page.items], next_cursor=page.next_cursor)


def _send_request(body: MailSendInput) -> sending.SendRequest:
    def as_list(value: str | list[str] | None) -> list[str]:
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    return sending.SendRequest(
        sender=body.from_,
        to=as_list(body.to),
        cc=list(body.cc),
        bcc=list(body.bcc),
        reply_to=as_list(body.reply_to),
        subject=body.subject,
        text=body.text,
        html=body.html,
        headers=dict(body.headers),
        attachments=[sending.Attachment(a.filename, a.content, a.content_type, a.content_id) for a in body.attachments],
        tags=dict(body.tags),
    )


def mail_message(message: MessageView) -> MailMessage:
    error = MessageError(code=message.error_code, message=message.error_message or "") if message.error_code else None
    return MailMessage(
        id=message.id,
        org_id=message.org_id,
        from_=message.from_address,
        to=message.to,
        cc=message.cc,
        bcc=message.bcc,
        reply_to=message.reply_to,
        subject=message.subject,
        status=message.status,
        message_id=message.message_id,
        domain=message.domain,
        dkim_selector=message.dkim_selector,
        suppressed_recipients=message.suppressed_recipients,
        tags=message.tags,
        size_bytes=message.size_bytes,
        rejected_recipients=message.rejected_recipients,
        relay_response=message.relay_response,
        error=error,
        last_event=message.last_event,
        source=message.source,
        created_at=message.created_at,
        sent_at=message.sent_at,
    )
