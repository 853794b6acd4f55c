import type { Webhook, WebhookCreated, WebhookCreateInput, WebhookEventType } from "@orgmail/client";
import { useId, useState } from "react";
import { ConfirmButton } from "../shared/ConfirmButton";
import type { Column } from "../shared/DataTable";
import { ErrorBanner } from "../shared/ErrorBanner";
import { PagedTable } from "../shared/PagedTable";
import { Notice } from "../shared/States";
import { OneTimeSecret } from "../shared/OneTimeSecret";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { useAction } from "../shared/useAction";
import { usePagedList } from "../shared/usePagedList";
import { sampleWebhookSecret, sampleWebhooks } from "../preview";
import { WebhookDeliveries } from "./WebhookDeliveries";
import { RefreshButton } from "../shared/RefreshButton";

/** `webhook.test` is not subscribed to: `webhooks/test` delivers it to the one webhook it names. */
export type SubscribableEventType = Exclude<WebhookEventType, "webhook.test">;

// A Record, so that a type the service adds fails the type check until it is described here.
const EVENT_DESCRIPTIONS: Record<SubscribableEventType, string> = {
  "message.sent": "the relay took a message",
  "message.failed": "a send failed",
  "message.suppressed": "every recipient was suppressed",
  "message.delivered": "a receiver reported delivery",
  "message.deferred": "a receiver is still trying",
  "message.bounced": "a recipient bounced",
  "message.complained": "a recipient reported spam",
  "suppression.created": "an address was suppressed",
};

/** The event types a webhook can subscribe to, in the order the form offers them. */
export const WEBHOOK_EVENT_TYPES = Object.keys(EVENT_DESCRIPTIONS) as readonly SubscribableEventType[];

export interface WebhookListProps {
  onCreated?: (created: WebhookCreated) => void;
  onDeleted?: (webhook: Webhook) => void;
  pageSize?: number;
  preview?: boolean;
  title?: string;
}

function subscribesToAll(webhook: Webhook): boolean {
  return WEBHOOK_EVENT_TYPES.every((type) => webhook.events.includes(type));
}

/**
 * The org's webhooks: add one (its signing secret shown once), send it a test event, see its
 * recent deliveries, delete it (after asking).
 */
export function WebhookList({ onCreated, onDeleted, pageSize = 50, preview = false, title = "Webhooks" }: WebhookListProps) {
  const list = usePagedList<Webhook>({
    resource: "webhooks",
    preview,
    sample: () => sampleWebhooks,
    key: String(pageSize),
    loadPage: async (client, cursor, signal) => {
      const page = await client.mail.webhooks.list({ limit: pageSize, cursor }, { signal });
      return { items: page.webhooks, nextCursor: page.nextCursor };
    },
  });
  const rowAction = useAction(preview);
  const [openId, setOpenId] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function sendTest(webhook: Webhook) {
    setNotice(null);
    const ok = await rowAction.run(async (client) => (await client.mail.webhooks.test({ id: webhook.id })).ok, {
      touches: ["webhooks"],
      preview: () => true,
    });
    if (!ok) return;
    setOpenId(webhook.id);
    setNotice(`A webhook.test event is on its way to ${webhook.url}. Its delivery shows under the webhook within a few seconds: press Refresh there.`);
  }

  async function remove(webhook: Webhook) {
    setNotice(null);
    const ok = await rowAction.run(async (client) => (await client.mail.webhooks.delete({ id: webhook.id })).ok, {
      touches: ["webhooks"],
      preview: () => true,
    });
    if (!ok) return;
    list.setItems((items) => items.filter((w) => w.id !== webhook.id));
    setOpenId((current) => (current === webhook.id ? null : current));
    setNotice(`The webhook to ${webhook.url} is deleted, with its delivery log.`);
    onDeleted?.(webhook);
  }

  const columns: Column<Webhook>[] = [
    {
      header: "URL",
      cell: (w) => (
        <span className="om-stack">
          <code className="om-url">{w.url}</code>
          {w.description && <span className="om-muted">{w.description}</span>}
        </span>
      ),
    },
    {
      header: "Events",
      cell: (w) =>
        subscribesToAll(w) ? (
          <span>All events</span>
        ) : (
          <span className="om-tags">
            {w.events.map((type) => (
              <span key={type} className="om-tag">
                {type}
              </span>
            ))}
          </span>
        ),
    },
    { header: "Status", cell: (w) => <StatusBadge value={w.enabled ? "enabled" : "disabled"} /> },
    { header: "Created", cell: (w) => <Timestamp value={w.createdAt} /> },
    {
      header: "Actions",
      className: "om-actions",
      cell: (w) => (
        <span className="om-row-actions">
          <button
            type="button"
            className="om-button"
            aria-expanded={openId === w.id}
            aria-label={`Deliveries to ${w.url}`}
            onClick={() => setOpenId((current) => (current === w.id ? null : w.id))}
          >
            Deliveries
          </button>
          <button
            type="button"
            className="om-button"
            aria-label={`Send a test event to ${w.url}`}
            disabled={rowAction.pending || !w.enabled}
            onClick={() => void sendTest(w)}
          >
            Send test
          </button>
          <ConfirmButton
            label="Delete"
            accessibleLabel={`Delete the webhook to ${w.url}`}
            question={`Delete the webhook to ${w.url} and its delivery log?`}
            confirmLabel="Delete webhook"
            disabled={rowAction.pending}
            onConfirm={() => void remove(w)}
          />
        </span>
      ),
    },
  ];

  return (
    <WidgetFrame
      title={title}
      className="om-webhook-list"
      preview={preview}
      actions={!preview && <RefreshButton onClick={list.reload} />}
    >
      <CreateWebhook
        preview={preview}
        onCreated={(created) => {
          list.setItems((items) => [created.webhook, ...items.filter((w) => w.id !== created.webhook.id)]);
          onCreated?.(created);
        }}
      />
      {rowAction.error && <ErrorBanner error={rowAction.error} onDismiss={rowAction.clearError} />}
      <Notice text={notice} />
      <PagedTable
        list={list}
        loadingLabel="Loading webhooks…"
        empty="No webhooks yet. Add an endpoint to hear about sends, bounces and complaints as they happen."
        caption={title}
        columns={columns}
        rowKey={(w) => w.id}
        selectedKey={openId}
        after={(w) => (openId === w.id ? <WebhookDeliveries embedded webhookId={w.id} preview={preview} title="Recent deliveries" /> : null)}
      />
    </WidgetFrame>
  );
}

/** The add form; once the service answers, the secret replaces it until "Done". */
function CreateWebhook({ preview, onCreated }: { preview: boolean; onCreated: (created: WebhookCreated) => void }) {
  const ids = { url: useId(), description: useId(), eventsHint: useId() };
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [events, setEvents] = useState<readonly SubscribableEventType[]>(WEBHOOK_EVENT_TYPES);
  const [localProblem, setLocalProblem] = useState<string | null>(null);
  const [created, setCreated] = useState<WebhookCreated | null>(null);
  const action = useAction(preview);
  const all = events.length === WEBHOOK_EVENT_TYPES.length;

  function toggle(type: SubscribableEventType, checked: boolean) {
    setLocalProblem(null);
    // Kept in the form's order, whatever order they were ticked in.
    setEvents((current) => WEBHOOK_EVENT_TYPES.filter((t) => (t === type ? checked : current.includes(t))));
  }

  async function submit() {
    if (events.length === 0) {
      setLocalProblem("Choose at least one event type.");
      return;
    }
    setLocalProblem(null);
    // Every type ticked: leave `events` out, which also subscribes to the types the service adds later.
    const input: WebhookCreateInput = { url: url.trim() };
    if (!all) input.events = [...events];
    if (description.trim()) input.description = description.trim();
    const result = await action.run((client) => client.mail.webhooks.create(input), {
      touches: ["webhooks"],
      preview: () => ({
        webhook: {
          ...sampleWebhooks[0]!,
          id: `whk_preview_${Date.now()}`,
          url: input.url,
          events: input.events ?? [...WEBHOOK_EVENT_TYPES, "webhook.test"],
          description: input.description ?? null,
          createdAt: new Date().toISOString(),
        },
        secret: sampleWebhookSecret,
      }),
    });
    if (!result) return;
    setCreated(result);
    setUrl("");
    setDescription("");
    setEvents(WEBHOOK_EVENT_TYPES);
    onCreated(result);
  }

  if (created) {
    return (
      <OneTimeSecret
        regionLabel="New webhook signing secret"
        confirmation={
          <>
            Webhook to <strong>{created.webhook.url}</strong> created.
          </>
        }
        label="Signing secret"
        secret={created.secret}
        copyLabel="Copy secret"
        warning={
          <>
            <strong>Copy it now: you will not see this secret again.</strong> Your endpoint checks each delivery&apos;s{" "}
            <code>webhook-signature</code> header with it (Standard Webhooks); orgmail keeps it encrypted and never shows it.
          </>
        }
        onDone={() => setCreated(null)}
      />
    );
  }
  return (
    <form
      className="om-form om-webhook-form"
      aria-label="Add webhook"
      onSubmit={(event) => {
        event.preventDefault();
        void submit();
      }}
    >
      {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
      <div className="om-form om-form--row om-form--flush">
        <div className="om-field om-field--grow">
          <label htmlFor={ids.url}>Endpoint URL</label>
          <input
            id={ids.url}
            type="url"
            required
            autoComplete="off"
            placeholder="https://example.com/webhooks/orgmail"
            value={url}
            onChange={(event) => setUrl(event.target.value)}
          />
        </div>
        <div className="om-field om-field--grow">
          <label htmlFor={ids.description}>
            Description <span className="om-optional">(optional)</span>
          </label>
          <input id={ids.description} type="text" maxLength={1000} value={description} onChange={(event) => setDescription(event.target.value)} />
        </div>
      </div>
      <fieldset className="om-fieldset" aria-describedby={ids.eventsHint}>
        <legend>Events</legend>
        <div className="om-checkboxes">
          {WEBHOOK_EVENT_TYPES.map((type) => (
            <label key={type} className="om-checkbox">
              <input type="checkbox" checked={events.includes(type)} onChange={(event) => toggle(type, event.target.checked)} />
              <span className="om-stack">
                <code>{type}</code>
                <span className="om-muted">{EVENT_DESCRIPTIONS[type]}</span>
              </span>
            </label>
          ))}
        </div>
        <p id={ids.eventsHint} className="om-muted om-fieldset__hint">
          {all
            ? "All ticked: every event type, including types added later."
            : `Only the ${events.length} ticked type${events.length === 1 ? "" : "s"}.`}{" "}
          Test events are always delivered.
        </p>
      </fieldset>
      {localProblem && (
        <p className="om-error" role="alert">
          {localProblem}
        </p>
      )}
      <div className="om-form__actions">
        <button type="submit" className="om-button om-button--primary" disabled={action.pending} aria-busy={action.pending}>
          {action.pending ? "Adding…" : "Add webhook"}
        </button>
        {!all && (
          <button type="button" className="om-button om-button--quiet" onClick={() => setEvents(WEBHOOK_EVENT_TYPES)}>
            Tick all events
          </button>
        )}
      </div>
    </form>
  );
}
