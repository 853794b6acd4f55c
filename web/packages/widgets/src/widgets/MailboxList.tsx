import type { Mailbox, Member } from "@orgmail/client";
import { useState } from "react";
import { ConfirmButton } from "../shared/ConfirmButton";
import type { Column } from "../shared/DataTable";
import { ErrorBanner } from "../shared/ErrorBanner";
import { PagedTable } from "../shared/PagedTable";
import { Loading } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { assigneeLabel, useMembers } from "../shared/members";
import { useAction } from "../shared/useAction";
import { usePagedList } from "../shared/usePagedList";
import { sampleMailboxes } from "../preview";
import { AssignMailbox } from "./AssignMailbox";
import { RefreshButton } from "../shared/RefreshButton";

export interface MailboxListProps {
  /** The org's members, for assigning; loaded from the service when not given. */
  members?: Member[];
  /** Makes each address a button; the host shows details, for example. */
  onSelect?: (mailbox: Mailbox) => void;
  selectedId?: string | null;
  onDeleted?: (mailbox: Mailbox) => void;
  pageSize?: number;
  preview?: boolean;
  title?: string;
}

/** The org's mailboxes, newest first: assign, unassign, delete (after asking). */
export function MailboxList({
  members: givenMembers,
  onSelect,
  selectedId,
  onDeleted,
  pageSize = 50, preview = false, title = "Mailboxes" }: MailboxListProps) {
  const list = usePagedList<Mailbox>({
    resource: "mailboxes",
    preview,
    sample: () => sampleMailboxes,
    key: String(pageSize),
    loadPage: async (client, cursor, signal) => {
      const page = await client.mail.mailboxes.list({ limit: pageSize, cursor }, { signal });
      return { items: page.mailboxes, nextCursor: page.nextCursor };
    },
  });
  const membersState = useMembers(givenMembers, preview);
  const members = membersState.members;
  const [assigningId, setAssigningId] = useState<string | null>(null);
  const action = useAction(preview);

  const replace = (updated: Mailbox) => list.setItems((items) => items.map((m) => (m.id === updated.id ? updated : m)));

  async function unassign(mailbox: Mailbox) {
    const updated = await action.run(
      async (client) => (await client.mail.mailboxes.assign({ id: mailbox.id, assignedUserId: null })).mailbox,
      { touches: ["mailboxes"], preview: () => ({ ...mailbox, assignedUserId: null }) },
    );
    if (updated) replace(updated);
  }

  async function remove(mailbox: Mailbox) {
    const ok = await action.run(async (client) => (await client.mail.mailboxes.delete({ id: mailbox.id })).ok, {
      touches: ["mailboxes"],
      preview: () => true,
    });
    if (!ok) return;
    list.setItems((items) => items.filter((m) => m.id !== mailbox.id));
    onDeleted?.(mailbox);
  }

  const columns: Column<Mailbox>[] = [
    {
      header: "Address",
      cell: (m) => (
        <span className="om-stack">
          {onSelect ? (
            <button type="button" className="om-link" onClick={() => onSelect(m)} aria-current={selectedId === m.id ? "true" : undefined}>
              {m.address}
            </button>
          ) : (
            <span>{m.address}</span>
          )}
          {m.displayName && <span className="om-muted">{m.displayName}</span>}
        </span>
      ),
    },
    {
      header: "Assigned to",
      cell: (m) =>
        m.assignedUserId === null ? <StatusBadge value="unassigned" /> : <span>{assigneeLabel(m.assignedUserId, members)}</span>,
    },
    { header: "Created", cell: (m) => <Timestamp value={m.createdAt} /> },
    {
      header: "Actions",
      className: "om-actions",
      cell: (m) => (
        <span className="om-row-actions">
          <button
            type="button"
            className="om-button"
            aria-expanded={assigningId === m.id}
            aria-label={`Assign ${m.address}`}
            onClick={() => setAssigningId((current) => (current === m.id ? null : m.id))}
          >
            Assign
          </button>
          {m.assignedUserId !== null && (
            <button
              type="button"
              className="om-button"
              aria-label={`Unassign ${m.address}`}
              disabled={action.pending}
              onClick={() => void unassign(m)}
            >
              Unassign
            </button>
          )}
          <ConfirmButton
            label="Delete"
            accessibleLabel={`Delete ${m.address}`}
            question={`Delete ${m.address} and all its mail?`}
            confirmLabel="Delete mailbox"
            disabled={action.pending}
            onConfirm={() => void remove(m)}
          />
        </span>
      ),
    },
  ];

  return (
    <WidgetFrame
      title={title}
      className="om-mailbox-list"
      preview={preview}
      actions={!preview && <RefreshButton onClick={list.reload} />}
    >
      {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
      <PagedTable
        list={list}
        loadingLabel="Loading mailboxes…"
        empty="No mailboxes yet. Create one to get started."
        caption={title}
        columns={columns}
        rowKey={(m) => m.id}
        selectedKey={selectedId}
        after={(m) =>
          assigningId === m.id ? (
            members === null ? (
              membersState.error ? (
                <ErrorBanner error={membersState.error} onRetry={membersState.reload} />
              ) : (
                <Loading label="Loading members…" />
              )
            ) : (
              <AssignMailbox
                embedded
                mailbox={m}
                members={members}
                preview={preview}
                onAssigned={replace}
                onCancel={() => setAssigningId(null)}
              />
            )
          ) : null
        }
      />
    </WidgetFrame>
  );
}
