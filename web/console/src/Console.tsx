import type { Member } from "@orgmail/client";
import {
  AssignMailbox,
  CreateMailboxForm,
  DomainSetup,
  MailProvider,
  MailboxDetail,
  MailboxList,
  MessageDetail,
  MessageLog,
  SendMailForm,
  SuppressionList,
  WebhookList,
  useMailClient,
} from "@orgmail/widgets";
import { useEffect, useMemo, useState } from "react";
import { MembersPanel } from "./MembersPanel";

/** Every widget against this service, with the key the person pasted. */
export function Console({ apiKey, onForget }: { apiKey: string; onForget: () => void }) {
  const headers = useMemo(() => ({ Authorization: `Bearer ${apiKey}` }), [apiKey]);
  return (
    <MailProvider basePath="" headers={headers}>
      <Workspace onForget={onForget} />
    </MailProvider>
  );
}

function Workspace({ onForget }: { onForget: () => void }) {
  const client = useMailClient();
  const [members, setMembers] = useState<Member[] | undefined>(undefined);
  const [sender, setSender] = useState<string | null>(null);
  const [mailboxId, setMailboxId] = useState<string | null>(null);
  const [messageId, setMessageId] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    client.mail.members.list({ limit: 200 }, { signal: controller.signal }).then(
      (page) => setMembers(page.members),
      () => setMembers(undefined), // the widgets load (and show the error) themselves
    );
    // Pre-fill From with the first verified domain, when the service can tell.
    client.mail.domains.list({ limit: 200 }, { signal: controller.signal }).then(
      (page) => {
        const verified = page.domains.find((d) => d.status === "verified");
        setSender(verified ? `hello@${verified.name}` : "");
      },
      () => setSender(""),
    );
    return () => controller.abort();
  }, [client]);

  return (
    <div className="console">
      <header className="console__header">
        <h1 className="console__title">orgmail console</h1>
        <nav className="console__nav" aria-label="Console">
          <a href="#mailboxes">Mailboxes</a>
          <a href="#mail">Mail</a>
          <a href="#suppressions">Suppressions</a>
          <a href="#webhooks">Webhooks</a>
          <a href="#domains">Domains</a>
          <a href="#members">Members</a>
          <a href="/docs">API docs</a>
          <button type="button" className="om-button om-button--quiet" onClick={onForget}>
            Forget API key
          </button>
        </nav>
      </header>
      <main>
        <h2 id="mailboxes" className="console__section">Mailboxes</h2>
        <div className="console__grid console__grid--wide-right">
          <CreateMailboxForm members={members} onCreated={(created) => setMailboxId(created.mailbox.id)} />
          <MailboxList
            members={members}
            onSelect={(mailbox) => setMailboxId(mailbox.id)}
            selectedId={mailboxId}
            onDeleted={(mailbox) => setMailboxId((current) => (current === mailbox.id ? null : current))}
          />
        </div>
        <div className="console__grid">
          <MailboxDetail id={mailboxId} members={members} />
          <AssignMailbox mailboxId={mailboxId} members={members ?? []} />
        </div>

        <h2 id="mail" className="console__section">Mail</h2>
        <div className="console__grid console__grid--wide-right">
          {sender === null ? (
            <div className="om-widget" aria-busy="true" />
          ) : (
            <SendMailForm defaultFrom={sender} onSent={(message) => setMessageId(message.id)} />
          )}
          <MessageLog onSelect={(message) => setMessageId(message.id)} selectedId={messageId} />
        </div>
        <MessageDetail id={messageId} />

        <h2 id="suppressions" className="console__section">Suppressions</h2>
        <SuppressionList />

        <h2 id="webhooks" className="console__section">Webhooks</h2>
        <WebhookList />

        <h2 id="domains" className="console__section">Domains</h2>
        <DomainSetup />

        <h2 id="members" className="console__section">Members</h2>
        <MembersPanel members={members} onChange={setMembers} />
      </main>
    </div>
  );
}
