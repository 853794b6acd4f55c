import type { MailboxCreated, MailboxCreateInput, Member } from "@orgmail/client";
import { useId, useState } from "react";
import { ErrorBanner } from "../shared/ErrorBanner";
import { OneTimeSecret } from "../shared/OneTimeSecret";
import { WidgetFrame } from "../shared/WidgetFrame";
import { memberLabel, useMembers } from "../shared/members";
import { useAction } from "../shared/useAction";
import { sampleMailboxes, samplePassword } from "../preview";

export interface CreateMailboxFormProps {
  /** The org's members, to assign the new mailbox; loaded from the service when not given. */
  members?: Member[];
  /** Pre-fills the address's domain part, e.g. "example.com". */
  domain?: string;
  onCreated?: (created: MailboxCreated) => void;
  preview?: boolean;
  title?: string;
}

/** Create a mailbox; its password is shown once, with a copy button, and never again. */
export function CreateMailboxForm({ members: givenMembers, domain, onCreated, preview = false, title = "Create mailbox" }: CreateMailboxFormProps) {
  const ids = { address: useId(), name: useId(), assignee: useId(), quota: useId() };
  const { members } = useMembers(givenMembers, preview);
  const [address, setAddress] = useState(domain ? `@${domain}` : "");
  const [displayName, setDisplayName] = useState("");
  const [assignee, setAssignee] = useState("");
  const [quota, setQuota] = useState("");
  const [created, setCreated] = useState<MailboxCreated | null>(null);
  const action = useAction(preview);

  async function submit() {
    const input: MailboxCreateInput = { address: address.trim() };
    if (displayName.trim()) input.displayName = displayName.trim();
    if (assignee.trim()) input.assignedUserId = assignee.trim();
    if (quota.trim()) input.quotaMb = Number(quota);
    const result = await action.run((client) => client.mail.mailboxes.create(input), {
      touches: ["mailboxes"],
      preview: () => ({
        mailbox: { ...sampleMailboxes[1]!, address: input.address, displayName: input.displayName ?? null },
        password: samplePassword,
      }),
    });
    if (!result) return;
    setCreated(result);
    setAddress(domain ? `@${domain}` : "");
    setDisplayName("");
    setAssignee("");
    setQuota("");
    onCreated?.(result);
  }

  return (
    <WidgetFrame title={title} className="om-create-mailbox" preview={preview}>
      {created ? (
        <OneTimeSecret
          regionLabel="New mailbox password"
          confirmation={
            <>
              Mailbox <strong>{created.mailbox.address}</strong> created.
            </>
          }
          label="Password"
          secret={created.password}
          copyLabel="Copy password"
          warning={
            <>
              <strong>Copy it now: you will not see this password again.</strong> orgmail keeps only a hash of it.
            </>
          }
          onDone={() => setCreated(null)}
        />
      ) : (
        <form
          className="om-form"
          aria-label={title}
          onSubmit={(event) => {
            event.preventDefault();
            void submit();
          }}
        >
          {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
          <div className="om-field">
            <label htmlFor={ids.address}>Address</label>
            <input
              id={ids.address}
              type="email"
              required
              autoComplete="off"
              placeholder="name@example.com"
              value={address}
              onChange={(event) => setAddress(event.target.value)}
            />
          </div>
          <div className="om-field">
            <label htmlFor={ids.name}>Display name <span className="om-optional">(optional)</span></label>
            <input id={ids.name} type="text" maxLength={200} value={displayName} onChange={(event) => setDisplayName(event.target.value)} />
          </div>
          <div className="om-field">
            <label htmlFor={ids.assignee}>Assign to <span className="om-optional">(optional)</span></label>
            {members !== null ? (
              <select id={ids.assignee} value={assignee} onChange={(event) => setAssignee(event.target.value)}>
                <option value="">Nobody</option>
                {members.map((member) => (
                  <option key={member.userId} value={member.userId}>
                    {memberLabel(member)}
                  </option>
                ))}
              </select>
            ) : (
              <input id={ids.assignee} type="text" placeholder="member user id" value={assignee} onChange={(event) => setAssignee(event.target.value)} />
            )}
          </div>
          <div className="om-field">
            <label htmlFor={ids.quota}>Quota in MB <span className="om-optional">(optional)</span></label>
            <input id={ids.quota} type="number" min={1} inputMode="numeric" value={quota} onChange={(event) => setQuota(event.target.value)} />
          </div>
          <div className="om-form__actions">
            <button type="submit" className="om-button om-button--primary" disabled={action.pending} aria-busy={action.pending}>
              {action.pending ? "Creating…" : "Create mailbox"}
            </button>
          </div>
        </form>
      )}
    </WidgetFrame>
  );
}
