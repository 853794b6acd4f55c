import type { MailMessage, MessageEvent } from "@orgmail/client";
import type { ReactNode } from "react";
import { DataTable } from "../shared/DataTable";
import type { Column } from "../shared/DataTable";
import { ErrorBanner } from "../shared/ErrorBanner";
import { Empty, Loading } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp, formatBytes } from "../shared/format";
import { useResource } from "../shared/useResource";
import { sampleMessageEvents, sampleMessages } from "../preview";

export interface MessageDetailProps {
  /** The message to show; nothing selected shows a hint. In preview mode, a sample message's id picks it. */
  id?: string | null;
  preview?: boolean;
  title?: string;
}

function list(values: string[]): ReactNode {
  return values.length === 0 ? <span className="om-muted">—</span> : values.join(", ");
}

/** One send-log row: who, what, what the relay said, and its timeline of events. */
export function MessageDetail({ id = null, preview = false, title = "Message" }: MessageDetailProps) {
  const sample = sampleMessages.find((m) => m.id === id) ?? sampleMessages[1]!;
  const message = useResource<MailMessage>({
    resources: ["messages"],
    preview,
    sample: () => sample,
    load: id === null ? null : async (client, signal) => (await client.mail.messages.get({ id }, { signal })).message,
    key: id ?? "",
  });
  // Its own load: a timeline that cannot load still leaves the message readable, and the other way round.
  const events = useResource<MessageEvent[]>({
    resources: ["messages"],
    preview,
    sample: () => sampleMessageEvents[sample.id] ?? [],
    load: id === null ? null : async (client, signal) => (await client.mail.messages.events({ id }, { signal })).events,
    key: id ?? "",
  });

  return (
    <WidgetFrame
      title={title}
      className="om-message-detail"
      preview={preview}
      actions={
        // Reports (deliveries, bounces, complaints) add events after the send: look again.
        !preview &&
        id !== null && (
          <button
            type="button"
            className="om-button om-button--quiet"
            onClick={() => {
              message.reload();
              events.reload();
            }}
          >
            Refresh
          </button>
        )
      }
    >
      {message.status === "idle" && <Empty>Select a message in the log to see its details.</Empty>}
      {message.status === "loading" && <Loading label="Loading message…" />}
      {message.status === "error" && <ErrorBanner error={message.error} onRetry={message.reload} />}
      {message.status === "ready" && <MessageFields message={message.data} />}
      {events.status !== "idle" && (
        <section className="om-timeline" aria-label="Timeline">
          <h3 className="om-subheading">Timeline</h3>
          {events.status === "loading" && <Loading label="Loading timeline…" />}
          {events.status === "error" && <ErrorBanner error={events.error} onRetry={events.reload} />}
          {events.status === "ready" && events.data.length === 0 && (
            <Empty>No events yet: the message has not been handed to the relay.</Empty>
          )}
          {events.status === "ready" && events.data.length > 0 && (
            <DataTable caption="Timeline" columns={timelineColumns} rows={events.data} rowKey={(e) => e.id} />
          )}
        </section>
      )}
    </WidgetFrame>
  );
}

const dash = <span className="om-muted">—</span>;

/** No recipient: the event is about the whole message, except a complaint that named nobody. */
function EventRecipient({ event }: { event: MessageEvent }) {
  if (event.recipient !== null) return <span className="om-recipients">{event.recipient}</span>;
  return <span className="om-muted">{event.type === "complained" ? "not named in the report" : "whole message"}</span>;
}

/** Oldest first, as the service answers: sent, then what the receivers reported later. */
const timelineColumns: Column<MessageEvent>[] = [
  { header: "Time", cell: (e) => <Timestamp value={e.createdAt} seconds /> },
  { header: "Event", cell: (e) => <StatusBadge value={e.type} /> },
  { header: "Recipient", cell: (e) => <EventRecipient event={e} /> },
  { header: "Bounce", cell: (e) => (e.bounceType === null ? dash : <StatusBadge value={e.bounceType} tone={`bounce-${e.bounceType}`} />) },
  { header: "SMTP status", cell: (e) => (e.smtpStatus === null ? dash : <code>{e.smtpStatus}</code>) },
  { header: "Diagnostic", className: "om-diagnostic", cell: (e) => (e.diagnostic === null ? dash : <code>{e.diagnostic}</code>) },
];

function MessageFields({ message: m }: { message: MailMessage }) {
  const tags = Object.entries(m.tags);
  return (
    <>
      <p className="om-message-detail__subject">
        <strong>{m.subject || "(no subject)"}</strong> <StatusBadge value={m.status} />
      </p>
      {m.error && (
        <p className="om-error om-error--inline">
          <code className="om-error__code">{m.error.code}</code> {m.error.message}
        </p>
      )}
      <dl className="om-details">
        <dt>From</dt>
        <dd>{m.from}</dd>
        <dt>To</dt>
        <dd>{list(m.to)}</dd>
        {m.cc.length > 0 && (
          <>
            <dt>Cc</dt>
            <dd>{list(m.cc)}</dd>
          </>
        )}
        {m.bcc.length > 0 && (
          <>
            <dt>Bcc</dt>
            <dd>{list(m.bcc)}</dd>
          </>
        )}
        {m.replyTo.length > 0 && (
          <>
            <dt>Reply-To</dt>
            <dd>{list(m.replyTo)}</dd>
          </>
        )}
        <dt>Created</dt>
        <dd>
          <Timestamp value={m.createdAt} />
        </dd>
        <dt>Sent</dt>
        <dd>
          <Timestamp value={m.sentAt} />
        </dd>
        <dt>Size</dt>
        <dd>{formatBytes(m.sizeBytes)}</dd>
        <dt>Domain</dt>
        <dd>
          {m.domain}
          {m.dkimSelector && <span className="om-muted"> (DKIM selector {m.dkimSelector})</span>}
        </dd>
        <dt>Message-ID</dt>
        <dd>
          <code>{m.messageId}</code>
        </dd>
        <dt>Relay response</dt>
        <dd>{m.relayResponse ? <code>{m.relayResponse}</code> : <span className="om-muted">—</span>}</dd>
        {m.suppressedRecipients.length > 0 && (
          <>
            <dt>Suppressed (not sent to)</dt>
            <dd>{list(m.suppressedRecipients)}</dd>
          </>
        )}
        {tags.length > 0 && (
          <>
            <dt>Tags</dt>
            <dd>
              {tags.map(([name, value]) => (
                <span key={name} className="om-tag">
                  {name}: {value}
                </span>
              ))}
            </dd>
          </>
        )}
        <dt>Id</dt>
        <dd>
          <code>{m.id}</code>
        </dd>
      </dl>
      {m.rejectedRecipients.length > 0 && (
        <div className="om-table-wrap">
          <table className="om-table">
            <caption>Refused by the relay</caption>
            <thead>
              <tr>
                <th scope="col">Recipient</th>
                <th scope="col">Code</th>
                <th scope="col">Reply</th>
              </tr>
            </thead>
            <tbody>
              {m.rejectedRecipients.map((r) => (
                <tr key={r.email}>
                  <td>{r.email}</td>
                  <td>{r.code}</td>
                  <td>{r.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
