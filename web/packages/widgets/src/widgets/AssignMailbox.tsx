import type { Mailbox, Member } from "@orgmail/client";
import { useId, useState } from "react";
import { ErrorBanner } from "../shared/ErrorBanner";
import { Empty, Loading } from "../shared/States";
import { WidgetFrame } from "../shared/WidgetFrame";
import { assigneeLabel, memberLabel } from "../shared/members";
import { useAction } from "../shared/useAction";
import { useResource } from "../shared/useResource";
import { sampleMailboxes } from "../preview";

export interface AssignMailboxProps {
  /** The org's members to choose from (e.g. from `client.mail.members.list()`). */
  members: Member[];
  /** The mailbox, when the host already has it… */
  mailbox?: Mailbox;
  /** …or its id, and the widget loads it. */
  mailboxId?: string | null;
  onAssigned?: (mailbox: Mailbox) => void;
  onCancel?: () => void;
  /** Inside another widget: no frame and heading of its own. */
  embedded?: boolean;
  preview?: boolean;
  title?: string;
}

/** Assign a mailbox to an org member, or unassign it. */
export function AssignMailbox({
  members,
  mailbox: givenMailbox,
  mailboxId,
  onAssigned,
  onCancel,
  embedded = false,
  preview = false,
  title = "Assign mailbox",
}: AssignMailboxProps) {
  const id = givenMailbox?.id ?? mailboxId ?? null;
  const loaded = useResource<Mailbox>({
    resources: ["mailboxes"],
    preview,
    sample: () => givenMailbox ?? sampleMailboxes[0]!,
    load:
      givenMailbox === undefined && id !== null
        ? async (client, signal) => (await client.mail.mailboxes.get({ id }, { signal })).mailbox
        : null,
    key: id ?? "",
  });
  const mailbox = givenMailbox ?? (loaded.status === "ready" ? loaded.data : null);

  const body = (() => {
    if (mailbox) return <AssignForm mailbox={mailbox} members={members} onAssigned={onAssigned} onCancel={onCancel} preview={preview} />;
    if (id === null) return <Empty>Select a mailbox to assign it.</Empty>;
    if (loaded.status === "error") return <ErrorBanner error={loaded.error} onRetry={loaded.reload} />;
    return <Loading label="Loading mailbox…" />;
  })();

  if (embedded) return <div className="om-assign om-assign--embedded">{body}</div>;
  return (
    <WidgetFrame title={title} className="om-assign" preview={preview}>
      {body}
    </WidgetFrame>
  );
}

function AssignForm({
  mailbox,
  members,
  onAssigned,
  onCancel,
  preview,
}: {
  mailbox: Mailbox;
  members: Member[];
  onAssigned: ((mailbox: Mailbox) => void) | undefined;
  onCancel: (() => void) | undefined;
  preview: boolean;
}) {
  const selectId = useId();
  // This form's last save, with the `mailbox` it was made from: a newer `mailbox` from the host wins.
  const [saved, setSaved] = useState<{ from: Mailbox; mailbox: Mailbox } | null>(null);
  const current = saved?.from === mailbox ? saved.mailbox : mailbox;
  // The reader's pick for the mailbox as it was then; after a save, or a newer `mailbox`, the pick is its assignee.
  const [picked, setPicked] = useState<{ of: Mailbox; userId: string } | null>(null);
  const choice = picked?.of === current ? picked.userId : (current.assignedUserId ?? "");
  const [done, setDone] = useState<string | null>(null);
  const action = useAction(preview);

  async function assign(userId: string | null) {
    setDone(null);
    const updated = await action.run(
      async (client) => (await client.mail.mailboxes.assign({ id: current.id, assignedUserId: userId })).mailbox,
      { touches: ["mailboxes"], preview: () => ({ ...current, assignedUserId: userId, updatedAt: new Date().toISOString() }) },
    );
    if (!updated) return;
    setSaved({ from: mailbox, mailbox: updated });
    setDone(
      updated.assignedUserId === null
        ? `${updated.address} is now unassigned.`
        : `${updated.address} is now assigned to ${assigneeLabel(updated.assignedUserId, members)}.`,
    );
    onAssigned?.(updated);
  }

  const choiceValue = choice === "" ? null : choice;
  const knownAssignee = current.assignedUserId === null || members.some((m) => m.userId === current.assignedUserId);

  return (
    <form
      className="om-form om-form--inline"
      aria-label={`Assign ${current.address}`}
      onSubmit={(event) => {
        event.preventDefault();
        void assign(choiceValue);
      }}
    >
      {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
      {members.length === 0 ? (
        <Empty>No members in this organization yet: add members to assign mailboxes to them.</Empty>
      ) : (
        <div className="om-field">
          <label htmlFor={selectId}>Assign {current.address} to</label>
          <select id={selectId} value={choice} onChange={(event) => setPicked({ of: current, userId: event.target.value })}>
            <option value="">Nobody (unassigned)</option>
            {!knownAssignee && current.assignedUserId !== null && (
              <option value={current.assignedUserId}>{current.assignedUserId}</option>
            )}
            {members.map((member) => (
              <option key={member.userId} value={member.userId}>
                {memberLabel(member)}
              </option>
            ))}
          </select>
        </div>
      )}
      <div className="om-form__actions">
        {members.length > 0 && (
          <button
            type="submit"
            className="om-button om-button--primary"
            disabled={action.pending || choiceValue === current.assignedUserId}
            aria-busy={action.pending}
          >
            {action.pending ? "Saving…" : "Save"}
          </button>
        )}
        {members.length === 0 && current.assignedUserId !== null && (
          <button type="button" className="om-button" disabled={action.pending} onClick={() => void assign(null)}>
            Unassign
          </button>
        )}
        {onCancel && (
          <button type="button" className="om-button om-button--quiet" onClick={onCancel}>
            Close
          </button>
        )}
      </div>
      {done && (
        <p className="om-success" role="status">
          {done}
        </p>
      )}
    </form>
  );
}
