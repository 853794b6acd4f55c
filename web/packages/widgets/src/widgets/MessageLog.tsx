import type { MailMessage, MailMessageStatus } from "@orgmail/client";
import { useId, useState } from "react";
import type { Column } from "../shared/DataTable";
import { PagedTable } from "../shared/PagedTable";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { usePagedList } from "../shared/usePagedList";
import { sampleMessages } from "../preview";
import { RefreshButton } from "../shared/RefreshButton";

export const MESSAGE_STATUSES: readonly MailMessageStatus[] = ["queued", "sent", "failed", "bounced", "suppressed"];

export interface MessageLogProps {
  onSelect?: (message: MailMessage) => void;
  selectedId?: string | null;
  /** The status filter to start with; the reader can change it. */
  status?: MailMessageStatus | null;
  pageSize?: number;
  preview?: boolean;
  title?: string;
}

/** The send log, newest first: status badges, a status filter, and "Load more". */
export function MessageLog({ onSelect, selectedId, status: initialStatus = null, pageSize = 25, preview = false, title = "Message log" }: MessageLogProps) {
  const filterId = useId();
  const [status, setStatus] = useState<MailMessageStatus | null>(initialStatus);
  const list = usePagedList<MailMessage>({
    resource: "messages",
    preview,
    sample: () => sampleMessages,
    key: `${status ?? "all"}/${pageSize}`,
    loadPage: async (client, cursor, signal) => {
      const page = await client.mail.messages.list({ limit: pageSize, cursor, status }, { signal });
      return { items: page.messages, nextCursor: page.nextCursor };
    },
  });
  // Preview mode filters its sample rows locally; the service filters the real ones.
  const rows = preview && status !== null ? list.items.filter((m) => m.status === status) : list.items;

  const columns: Column<MailMessage>[] = [
    { header: "Created", cell: (m) => <Timestamp value={m.createdAt} /> },
    {
      header: "Subject",
      cell: (m) =>
        onSelect ? (
          <button type="button" className="om-link" onClick={() => onSelect(m)} aria-current={selectedId === m.id ? "true" : undefined}>
            {m.subject || "(no subject)"}
          </button>
        ) : (
          m.subject || "(no subject)"
        ),
    },
    {
      header: "To",
      cell: (m) => (
        <span className="om-recipients" title={m.to.join(", ")}>
          {m.to[0] ?? "—"}
          {m.to.length > 1 && <span className="om-muted"> +{m.to.length - 1}</span>}
        </span>
      ),
    },
    { header: "From", cell: (m) => <span className="om-recipients">{m.from}</span> },
    { header: "Status", cell: (m) => <StatusBadge value={m.status} /> },
  ];

  return (
    <WidgetFrame
      title={title}
      className="om-message-log"
      preview={preview}
      actions={
        <>
          <label htmlFor={filterId} className="om-inline-label">
            Status
          </label>
          <select
            id={filterId}
            value={status ?? ""}
            onChange={(event) => setStatus(event.target.value === "" ? null : (event.target.value as MailMessageStatus))}
          >
            <option value="">All</option>
            {MESSAGE_STATUSES.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
          {!preview && <RefreshButton onClick={list.reload} />}
        </>
      }
    >
      <PagedTable
        list={list}
        rows={rows}
        loadingLabel="Loading messages…"
        empty={status === null ? "No messages sent yet." : `No ${status} messages.`}
        caption={title}
        columns={columns}
        rowKey={(m) => m.id}
        selectedKey={selectedId}
      />
    </WidgetFrame>
  );
}
