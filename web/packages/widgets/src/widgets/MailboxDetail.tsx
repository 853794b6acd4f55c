import type { Mailbox, Member } from "@orgmail/client";
import { ErrorBanner } from "../shared/ErrorBanner";
import { Empty, Loading } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { assigneeLabel } from "../shared/members";
import { useResource } from "../shared/useResource";
import { sampleMailboxes } from "../preview";

export interface MailboxDetailProps {
  /** The mailbox to show; nothing selected shows a hint. */
  id?: string | null;
  /** Names assignees when given. */
  members?: Member[];
  preview?: boolean;
  title?: string;
}

/** One mailbox: its address, owner, quota and dates. */
export function MailboxDetail({ id = null, members, preview = false, title = "Mailbox" }: MailboxDetailProps) {
  const mailbox = useResource<Mailbox>({
    resources: ["mailboxes"],
    preview,
    sample: () => sampleMailboxes[0]!,
    load: id === null ? null : async (client, signal) => (await client.mail.mailboxes.get({ id }, { signal })).mailbox,
    key: id ?? "",
  });

  return (
    <WidgetFrame title={title} className="om-mailbox-detail" preview={preview}>
      {mailbox.status === "idle" && <Empty>Select a mailbox to see its details.</Empty>}
      {mailbox.status === "loading" && <Loading label="Loading mailbox…" />}
      {mailbox.status === "error" && <ErrorBanner error={mailbox.error} onRetry={mailbox.reload} />}
      {mailbox.status === "ready" && (
        <dl className="om-details">
          <dt>Address</dt>
          <dd>
            <strong>{mailbox.data.address}</strong>
          </dd>
          <dt>Display name</dt>
          <dd>{mailbox.data.displayName ?? <span className="om-muted">—</span>}</dd>
          <dt>Assigned to</dt>
          <dd>
            {mailbox.data.assignedUserId === null ? (
              <StatusBadge value="unassigned" />
            ) : (
              assigneeLabel(mailbox.data.assignedUserId, members ?? null)
            )}
          </dd>
          <dt>Quota</dt>
          <dd>{mailbox.data.quotaMb === null ? "No limit" : `${mailbox.data.quotaMb} MB`}</dd>
          <dt>Domain</dt>
          <dd>{mailbox.data.domain}</dd>
          <dt>Created</dt>
          <dd>
            <Timestamp value={mailbox.data.createdAt} />
          </dd>
          <dt>Updated</dt>
          <dd>
            <Timestamp value={mailbox.data.updatedAt} />
          </dd>
          <dt>Id</dt>
          <dd>
            <code>{mailbox.data.id}</code>
          </dd>
        </dl>
      )}
    </WidgetFrame>
  );
}
