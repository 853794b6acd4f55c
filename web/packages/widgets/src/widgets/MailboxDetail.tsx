import type { ClientSettings, Mailbox, MailServer, Member } from "@orgmail/client";
import { CopyButton } from "../shared/CopyButton";
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

/** What preview mode shows: a deployment with both submission listeners on. */
const sampleClientSettings: ClientSettings = {
  username: "support@example.com",
  imap: { host: "mail.example.com", port: 993, security: "tls" },
  submission: [
    { host: "mail.example.com", port: 465, security: "tls" },
    { host: "mail.example.com", port: 587, security: "starttls" },
  ],
  autoconfigUrl: "https://mail.example.com/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=support%40example.com",
};

const SECURITY_LABEL: Record<MailServer["security"], string> = { tls: "SSL/TLS", starttls: "STARTTLS" };

/** One mailbox: its address, owner, quota and dates, and the settings a member types into a mail client. */
export function MailboxDetail({ id = null, members, preview = false, title = "Mailbox" }: MailboxDetailProps) {
  const mailbox = useResource<Mailbox>({
    resources: ["mailboxes"],
    preview,
    sample: () => sampleMailboxes[0]!,
    load: id === null ? null : async (client, signal) => (await client.mail.mailboxes.get({ id }, { signal })).mailbox,
    key: id ?? "",
  });
  const settings = useResource<ClientSettings>({
    resources: ["mailboxes"],
    preview,
    sample: () => sampleClientSettings,
    load: id === null ? null : (client, signal) => client.mail.mailboxes.clientSettings({ id }, { signal }),
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
      {mailbox.status === "ready" && settings.status === "loading" && <Loading label="Loading mail client settings…" />}
      {mailbox.status === "ready" && settings.status === "error" && (
        <ErrorBanner error={settings.error} onRetry={settings.reload} />
      )}
      {mailbox.status === "ready" && settings.status === "ready" && <ClientSettingsList settings={settings.data} />}
    </WidgetFrame>
  );
}

function ClientSettingsList({ settings }: { settings: ClientSettings }) {
  return (
    <section aria-label="Mail client settings">
      <h3 className="om-subheading">Mail client settings</h3>
      <dl className="om-details om-client-settings">
        <dt>Username</dt>
        <dd>
          <code>{settings.username}</code> <CopyButton value={settings.username} accessibleLabel="Copy username" />
        </dd>
        <dt>Password</dt>
        <dd>The mailbox password, shown once when the mailbox was created</dd>
        <dt>IMAP (incoming)</dt>
        <dd>
          <Server server={settings.imap} name="IMAP" />
        </dd>
        <dt>SMTP (outgoing)</dt>
        <dd>
          {settings.submission.length === 0 ? (
            <span className="om-muted">Submission is not turned on for this service.</span>
          ) : (
            <ul className="om-plain-list">
              {settings.submission.map((server) => (
                <li key={server.port}>
                  <Server server={server} name={`SMTP port ${server.port}`} />
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Autoconfig</dt>
        <dd>
          <code>{settings.autoconfigUrl}</code>{" "}
          <CopyButton value={settings.autoconfigUrl} accessibleLabel="Copy autoconfig URL" />
        </dd>
      </dl>
    </section>
  );
}

function Server({ server, name }: { server: MailServer; name: string }) {
  return (
    <>
      <code>{server.host}</code> <CopyButton value={server.host} accessibleLabel={`Copy ${name} host`} /> port{" "}
      <code>{server.port}</code>, {SECURITY_LABEL[server.security]}
    </>
  );
}
