import type { Suppression, SuppressionReason } from "@orgmail/client";
import { useId, useState } from "react";
import type { Column } from "../shared/DataTable";
import { ErrorBanner } from "../shared/ErrorBanner";
import { PagedTable } from "../shared/PagedTable";
import { Notice } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { useAction } from "../shared/useAction";
import { usePagedList } from "../shared/usePagedList";
import { sampleSuppressions } from "../preview";

export const SUPPRESSION_REASONS: readonly SuppressionReason[] = ["manual", "bounce", "complaint", "unsubscribe"];

export interface SuppressionListProps {
  pageSize?: number;
  preview?: boolean;
  title?: string;
}

/** Addresses the org never sends to: add one with a reason and a note, or remove one. */
export function SuppressionList({ pageSize = 50, preview = false, title = "Suppressions" }: SuppressionListProps) {
  const ids = { email: useId(), reason: useId(), note: useId() };
  const list = usePagedList<Suppression>({
    resource: "suppressions",
    preview,
    sample: () => sampleSuppressions,
    key: String(pageSize),
    loadPage: async (client, cursor, signal) => {
      const page = await client.mail.suppressions.list({ limit: pageSize, cursor }, { signal });
      return { items: page.suppressions, nextCursor: page.nextCursor };
    },
  });
  const action = useAction(preview);
  const [email, setEmail] = useState("");
  const [reason, setReason] = useState<SuppressionReason>("manual");
  const [note, setNote] = useState("");
  const [notice, setNotice] = useState<string | null>(null);

  async function add() {
    setNotice(null);
    const input = { email: email.trim(), reason, ...(note.trim() ? { note: note.trim() } : {}) };
    const added = await action.run(async (client) => (await client.mail.suppressions.add(input)).suppression, {
      touches: ["suppressions"],
      preview: () => ({
        id: `sup_preview_${Date.now()}`,
        orgId: sampleSuppressions[0]!.orgId,
        email: input.email,
        reason,
        note: input.note ?? null,
        createdAt: new Date().toISOString(),
      }),
    });
    if (!added) return;
    list.setItems((items) => [added, ...items.filter((s) => s.email !== added.email)]);
    setEmail("");
    setNote("");
    setReason("manual");
    setNotice(`${added.email} is suppressed.`);
  }

  async function remove(suppression: Suppression) {
    setNotice(null);
    const ok = await action.run(async (client) => (await client.mail.suppressions.remove({ email: suppression.email })).ok, {
      touches: ["suppressions"],
      preview: () => true,
    });
    if (!ok) return;
    list.setItems((items) => items.filter((s) => s.id !== suppression.id));
    setNotice(`${suppression.email} can receive mail again.`);
  }

  const columns: Column<Suppression>[] = [
    { header: "Email", cell: (s) => s.email },
    { header: "Reason", cell: (s) => <StatusBadge value={s.reason} /> },
    { header: "Note", cell: (s) => s.note ?? <span className="om-muted">—</span> },
    { header: "Added", cell: (s) => <Timestamp value={s.createdAt} /> },
    {
      header: "Actions",
      className: "om-actions",
      cell: (s) => (
        <button type="button" className="om-button" aria-label={`Remove ${s.email}`} disabled={action.pending} onClick={() => void remove(s)}>
          Remove
        </button>
      ),
    },
  ];

  return (
    <WidgetFrame title={title} className="om-suppression-list" preview={preview}>
      <form
        className="om-form om-form--row"
        aria-label="Add suppression"
        onSubmit={(event) => {
          event.preventDefault();
          void add();
        }}
      >
        <div className="om-field">
          <label htmlFor={ids.email}>Email</label>
          <input id={ids.email} type="email" required placeholder="someone@example.org" value={email} onChange={(event) => setEmail(event.target.value)} />
        </div>
        <div className="om-field">
          <label htmlFor={ids.reason}>Reason</label>
          <select id={ids.reason} value={reason} onChange={(event) => setReason(event.target.value as SuppressionReason)}>
            {SUPPRESSION_REASONS.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
        </div>
        <div className="om-field om-field--grow">
          <label htmlFor={ids.note}>Note <span className="om-optional">(optional)</span></label>
          <input id={ids.note} type="text" maxLength={1000} value={note} onChange={(event) => setNote(event.target.value)} />
        </div>
        <div className="om-form__actions">
          <button type="submit" className="om-button om-button--primary" disabled={action.pending} aria-busy={action.pending}>
            Add suppression
          </button>
        </div>
      </form>
      {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
      <Notice text={notice} />
      <PagedTable
        list={list}
        loadingLabel="Loading suppressions…"
        empty="No suppressed addresses: mail goes to everyone."
        caption={title}
        columns={columns}
        rowKey={(s) => s.id}
      />
    </WidgetFrame>
  );
}
