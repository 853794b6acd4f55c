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
    MessageList,
    MessageListInput,
    MessageOut,
)
from orgmail.core import messages, sending
from orgmail.db.sendlog import SendLogRow
from orgmail.db.tables import Message
from orgmail.errors import InvalidRequest

router = APIRouter(prefix="/v1/mail/messages", tags=["messages"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="The same as `idempotencyKey` in the body."),
]


@router.post("/send", responses=errors(403, 404, 409, 422, 502))
async def send(
    body: MailSendInput,
    context: SendDeps,
    idempotency_key: IdempotencyKeyHeader = None,
) -> MessageOut:
    """DKIM-sign and relay one message; answers the send-log row (`sent`).

    503 `relay_unavailable` names the `failed` row in `details.messageId`: retry with the same
    idempotency key and the same message is relayed once. 502: the relay refused every recipient.
    """
    session, settings = context.session, context.settings
    org_id = await org_scope(session, context.caller, body.org_id)
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidRequest(
            "idempotencyKey and the Idempotency-Key header differ.",
            details={"fields": [{"path": "idempotencyKey", "message": "differs from the Idempotency-Key header"}]},
        )
    row = await sending.send_message(
        session,
        org_id=org_id,
        request=_send_request(body),
        idempotency_key=body.idempotency_key or idempotency_key,
        relay=context.relay,
        vault=context.vault,
        limits=sending.Limits(
            max_recipients=settings.max_recipients,
            max_message_bytes=settings.max_message_bytes,
            relay_timeout_seconds=settings.relay_timeout_seconds,
        ),
        log=context.send_log,
    )
    return MessageOut(message=mail_message(row))


@router.post("/get", responses=errors(403, 404))
async def get(body: ByIdInput, caller: Caller, session: DbSession) -> MessageOut:
    org_id = await org_scope(session, caller, body.org_id)
    row = await messages.get_message(session, org_id=org_id, message_id=body.id)
    return MessageOut(message=mail_message(row))


@router.post("/list", responses=errors(403, 404))
async def list_(caller: Caller, session: DbSession, body: MessageListInput | None = None) -> MessageList:
    """Newest first; `status` and `recipient` (any of To, Cc, Bcc) narrow the list."""
    body = body or MessageListInput()
    org_id = await org_scope(session, caller, body.org_id)
    page = await messages.list_messages(
        session, org_id=org_id, status=body.status, recipient=body.recipient, limit=body.limit, cursor=body.cursor
    )
    return MessageList(messages=[mail_message(row) for row in page.items], next_cursor=page.next_cursor)


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


def mail_message(row: Message | SendLogRow) -> MailMessage:
    error = MessageError(code=row.error_code, message=row.error_message or "") if row.error_code else None
    return MailMessage(
        id=row.id,
        org_id=row.org_id,
        from_=row.from_address,
        to=row.to,
        cc=row.cc,
        bcc=row.bcc,
        reply_to=row.reply_to,
        subject=row.subject,
        status=row.status,
        message_id=row.message_id,
        domain=row.domain,
        dkim_selector=row.dkim_selector,
        suppressed_recipients=row.suppressed_recipients,
        tags=row.tags,
        size_bytes=row.size_bytes,
        rejected_recipients=row.rejected_recipients,
        relay_response=row.relay_response,
        error=error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )
