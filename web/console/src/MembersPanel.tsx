import type { Member, OrgmailError } from "@orgmail/client";
import { ErrorBanner, useInvalidate, useMailClient } from "@orgmail/widgets";
import { useState } from "react";

/**
 * The console's own small members panel (members are not among the widgets: a platform's identity
 * system usually pushes them). Standalone users add the people mailboxes are assigned to here.
 */
export function MembersPanel({ members, onChange }: { members: Member[] | undefined; onChange: (members: Member[]) => void }) {
  const client = useMailClient();
  const invalidate = useInvalidate();
  const [userId, setUserId] = useState("");
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [error, setError] = useState<OrgmailError | null>(null);
  const [pending, setPending] = useState(false);

  async function add() {
    setPending(true);
    setError(null);
    try {
      const { member } = await client.mail.members.add({
        userId: userId.trim(),
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(email.trim() ? { email: email.trim() } : {}),
      });
      onChange([member, ...(members ?? [])]);
      invalidate("members");
      setUserId("");
      setName("");
      setEmail("");
    } catch (failure) {
      setError(failure as OrgmailError);
    } finally {
      setPending(false);
    }
  }

  async function remove(member: Member) {
    setError(null);
    try {
      await client.mail.members.remove({ userId: member.userId });
      onChange((members ?? []).filter((m) => m.userId !== member.userId));
      invalidate("members");
      invalidate("mailboxes"); // their mailboxes became unassigned
    } catch (failure) {
      setError(failure as OrgmailError);
    }
  }

  return (
    <section className="om-widget" aria-labelledby="members-title">
      <header className="om-widget__header">
        <h2 id="members-title" className="om-widget__title">
          Members
        </h2>
      </header>
      <form
        className="om-form om-form--row"
        aria-label="Add member"
        onSubmit={(event) => {
          event.preventDefault();
          void add();
        }}
      >
        <div className="om-field">
          <label htmlFor="member-user-id">User id</label>
          <input id="member-user-id" required value={userId} onChange={(event) => setUserId(event.target.value)} />
        </div>
        <div className="om-field">
          <label htmlFor="member-name">Name</label>
          <input id="member-name" value={name} onChange={(event) => setName(event.target.value)} />
        </div>
        <div className="om-field">
          <label htmlFor="member-email">Email</label>
          <input id="member-email" type="email" value={email} onChange={(event) => setEmail(event.target.value)} />
        </div>
        <div className="om-form__actions">
          <button type="submit" className="om-button om-button--primary" disabled={pending}>
            Add member
          </button>
        </div>
      </form>
      {error && <ErrorBanner error={error} onDismiss={() => setError(null)} />}
      {members === undefined ? (
        <p className="om-empty">Members could not be loaded.</p>
      ) : members.length === 0 ? (
        <p className="om-empty">No members yet.</p>
      ) : (
        <div className="om-table-wrap">
          <table className="om-table">
            <caption className="om-visually-hidden">Members</caption>
            <thead>
              <tr>
                <th scope="col">User id</th>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col" className="om-actions">
                  Actions
                </th>
              </tr>
            </thead>
            <tbody>
              {members.map((member) => (
                <tr key={member.userId}>
                  <td>
                    <code>{member.userId}</code>
                  </td>
                  <td>{member.name ?? "—"}</td>
                  <td>{member.email ?? "—"}</td>
                  <td className="om-actions">
                    <button type="button" className="om-button" aria-label={`Remove member ${member.userId}`} onClick={() => void remove(member)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
