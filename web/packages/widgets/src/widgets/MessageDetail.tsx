import type { MailMessage } from "@orgmail/client";
import type { ReactNode } from "react";
import { ErrorBanner } from "../shared/ErrorBanner";
import { Empty, Loading } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp, formatBytes } from "../shared/format";
import { useResource } from "../shared/useResource";
import { sampleMessages } from "../preview";

export interface MessageDetailProps {
  /** The message to show; nothing selected shows a hint. */
  id?: string | null;
  preview?: boolean;
  title?: string;
}

function list(values: string[]): ReactNode {
  return values.length === 0 ? <span className="om-muted">—</span> : values.join(", ");
}

/** One send-log row: who, what, and what the relay said. */
export function MessageDetail({ id = null, preview = false, title = "Message" }: MessageDetailProps) {
  const message = useResource<MailMessage>({
    resources: ["messages"],
    preview,
    sample: () => sampleMessages[1]!,
    load: id === null ? null : async (client, signal) => (await client.mail.messages.get({ id }, { signal })).message,
    key: id ?? "",
  });

  return (
    <WidgetFrame title={title} className="om-message-detail" preview={preview}>
      {message.status === "idle" && <Empty>Select a message in the log to see its details.</Empty>}
      {message.status === "loading" && <Loading label="Loading message…" />}
      {message.status === "error" && <ErrorBanner error={message.error} onRetry={message.reload} />}
      {message.status === "ready" && <MessageFields message={message.data} />}
    </WidgetFrame>
  );
}

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
