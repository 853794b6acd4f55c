import type { WebhookDelivery } from "@orgmail/client";
import type { ReactNode } from "react";
import { useId } from "react";
import type { Column } from "../shared/DataTable";
import { PagedTable } from "../shared/PagedTable";
import { Empty } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { usePagedList } from "../shared/usePagedList";
import { sampleWebhookDeliveries, sampleWebhooks } from "../preview";
import { RefreshButton } from "../shared/RefreshButton";

export interface WebhookDeliveriesProps {
  /** The webhook whose attempts to show; nothing selected shows a hint. */
  webhookId?: string | null;
  pageSize?: number;
  /** Inside another widget (WebhookList's rows): a sub-section instead of a widget of its own. */
  embedded?: boolean;
  preview?: boolean;
  /** The heading; embedded, it also names the region (e.g. "Deliveries to https://…"). */
  title?: string;
}

const dash = <span className="om-muted">—</span>;

function statusCell(delivery: WebhookDelivery): ReactNode {
  if (delivery.statusCode === null) return <StatusBadge value="no answer" tone="error" />;
  const ok = delivery.statusCode >= 200 && delivery.statusCode < 300;
  return <StatusBadge value={String(delivery.statusCode)} tone={ok ? "ok" : "error"} />;
}

const columns: Column<WebhookDelivery>[] = [
  { header: "Time", cell: (d) => <Timestamp value={d.createdAt} seconds /> },
  {
    header: "Event",
    cell: (d) => (
      <span className="om-stack">
        <code>{d.eventType}</code>
        <code className="om-muted" title="The webhook-id header, the same on every attempt">
          {d.eventId}
        </code>
      </span>
    ),
  },
  { header: "Attempt", cell: (d) => d.attempt },
  { header: "Status", cell: statusCell },
  { header: "Duration", cell: (d) => (d.durationMs === null ? dash : `${d.durationMs} ms`) },
  { header: "Error", className: "om-diagnostic", cell: (d) => (d.error === null ? dash : d.error) },
  {
    header: "Next attempt",
    cell: (d) => (d.nextAttemptAt === null ? <span className="om-muted">{d.error === null ? "none: delivered" : "none"}</span> : <Timestamp value={d.nextAttemptAt} seconds />),
  },
];

/** One webhook's delivery log, newest first: each attempt's answer, how long it took, and what comes next. */
export function WebhookDeliveries({ webhookId = null, pageSize = 20, embedded = false, preview = false, title = "Webhook deliveries" }: WebhookDeliveriesProps) {
  const headingId = useId();
  const list = usePagedList<WebhookDelivery>({
    resource: "webhooks",
    preview,
    sample: () => sampleWebhookDeliveries[webhookId ?? sampleWebhooks[0]!.id] ?? [],
    key: `${webhookId}/${pageSize}`,
    loadPage: async (client, cursor, signal) => {
      if (webhookId === null) return { items: [], nextCursor: null };
      const page = await client.mail.webhooks.deliveries({ webhookId, limit: pageSize, cursor }, { signal });
      return { items: page.deliveries, nextCursor: page.nextCursor };
    },
  });

  const refresh = !preview && webhookId !== null && <RefreshButton onClick={list.reload} />;
  const body =
    webhookId === null && !preview ? (
      <Empty>Select a webhook to see its deliveries.</Empty>
    ) : (
      <PagedTable
        list={list}
        loadingLabel="Loading deliveries…"
        empty="No deliveries yet. Send a test event to try the endpoint; deliveries show up here within a few seconds."
        caption={title}
        columns={columns}
        rowKey={(d) => d.id}
      />
    );

  if (embedded) {
    return (
      <section className="om-deliveries om-deliveries--embedded" aria-labelledby={headingId}>
        <header className="om-subheader">
          <h3 id={headingId} className="om-subheading">
            {title}
          </h3>
          {refresh}
        </header>
        {body}
      </section>
    );
  }
  return (
    <WidgetFrame title={title} className="om-deliveries" preview={preview} actions={refresh}>
      {body}
    </WidgetFrame>
  );
}
