/**
 * Sample data for `preview` mode: every widget renders with these and makes no network call, so a
 * design tool, a storybook or a settings page can show what the widget looks like before it is wired.
 */

import type { MailMessage, Mailbox, Member, Suppression } from "@orgmail/client";

const ORG = "org_01JCPREVIEW0000000000000000";

export const sampleMembers: Member[] = [
  { userId: "u_ada", orgId: ORG, email: "ada@example.com", name: "Ada Lovelace", createdAt: "2026-11-02T09:00:00Z" },
  { userId: "u_grace", orgId: ORG, email: "grace@example.com", name: "Grace Hopper", createdAt: "2026-11-02T09:05:00Z" },
  { userId: "u_alan", orgId: ORG, email: null, name: null, createdAt: "2026-11-03T10:00:00Z" },
];

export const sampleMailboxes: Mailbox[] = [
  {
    id: "mbx_01JCPREVIEW0000000000000003",
    orgId: ORG,
    address: "support@example.com",
    localPart: "support",
    domain: "example.com",
    displayName: "Support",
    assignedUserId: "u_grace",
    quotaMb: 2048,
    createdAt: "2026-11-20T14:12:00Z",
    updatedAt: "2026-11-21T08:30:00Z",
  },
  {
    id: "mbx_01JCPREVIEW0000000000000002",
    orgId: ORG,
    address: "billing@example.com",
    localPart: "billing",
    domain: "example.com",
    displayName: "Billing",
    assignedUserId: null,
    quotaMb: null,
    createdAt: "2026-11-18T11:00:00Z",
    updatedAt: "2026-11-18T11:00:00Z",
  },
  {
    id: "mbx_01JCPREVIEW0000000000000001",
    orgId: ORG,
    address: "ada@example.com",
    localPart: "ada",
    domain: "example.com",
    displayName: "Ada Lovelace",
    assignedUserId: "u_ada",
    quotaMb: 1024,
    createdAt: "2026-11-10T09:30:00Z",
    updatedAt: "2026-11-10T09:30:00Z",
  },
];

function message(overrides: Partial<MailMessage> & Pick<MailMessage, "id" | "subject" | "status" | "createdAt">): MailMessage {
  return {
    orgId: ORG,
    from: "Example <hello@example.com>",
    to: ["customer@example.org"],
    cc: [],
    bcc: [],
    replyTo: [],
    messageId: `<${overrides.id}@example.com>`,
    domain: "example.com",
    dkimSelector: "om2026a",
    suppressedRecipients: [],
    tags: {},
    sizeBytes: 2310,
    rejectedRecipients: [],
    relayResponse: "250 2.0.0 Ok: queued as 4Xk2Lq",
    error: null,
    sentAt: overrides.status === "sent" ? overrides.createdAt : null,
    lastEvent: overrides.status === "queued" ? null : overrides.status,
    ...overrides,
  };
}

export const sampleMessages: MailMessage[] = [
  message({
    id: "msg_01JCPREVIEW0000000000000005",
    subject: "Your receipt for November",
    status: "sent",
    createdAt: "2026-11-24T16:40:00Z",
    tags: { kind: "receipt" },
  }),
  message({
    id: "msg_01JCPREVIEW0000000000000004",
    subject: "Reset your password",
    status: "bounced",
    to: ["nobody@example.net"],
    createdAt: "2026-11-24T15:02:00Z",
    relayResponse: "550 5.1.1 <nobody@example.net>: Recipient address rejected",
    rejectedRecipients: [{ email: "nobody@example.net", code: 550, message: "5.1.1 Recipient address rejected" }],
    error: { code: "relay_rejected", message: "The relay refused every recipient." },
  }),
  message({
    id: "msg_01JCPREVIEW0000000000000003",
    subject: "Weekly digest",
    status: "suppressed",
    to: ["unsubscribed@example.org"],
    suppressedRecipients: ["unsubscribed@example.org"],
    createdAt: "2026-11-23T08:00:00Z",
    relayResponse: null,
    error: { code: "all_recipients_suppressed", message: "Every recipient is suppressed." },
  }),
  message({
    id: "msg_01JCPREVIEW0000000000000002",
    subject: "Welcome to Example",
    status: "failed",
    createdAt: "2026-11-22T12:00:00Z",
    relayResponse: null,
    error: { code: "relay_unavailable", message: "The relay did not answer (451 4.3.0 try again later)." },
  }),
  message({
    id: "msg_01JCPREVIEW0000000000000001",
    subject: "Your order has shipped",
    status: "queued",
    createdAt: "2026-11-22T11:59:00Z",
    relayResponse: null,
  }),
];

export const sampleSuppressions: Suppression[] = [
  {
    id: "sup_01JCPREVIEW0000000000000003",
    orgId: ORG,
    email: "nobody@example.net",
    reason: "bounce",
    note: "550 5.1.1 Recipient address rejected",
    createdAt: "2026-11-24T15:02:01Z",
  },
  {
    id: "sup_01JCPREVIEW0000000000000002",
    orgId: ORG,
    email: "unsubscribed@example.org",
    reason: "unsubscribe",
    note: null,
    createdAt: "2026-11-20T10:00:00Z",
  },
  {
    id: "sup_01JCPREVIEW0000000000000001",
    orgId: ORG,
    email: "angry@example.org",
    reason: "complaint",
    note: "Marked the newsletter as spam",
    createdAt: "2026-11-12T17:45:00Z",
  },
];

export const samplePassword = "preview-Xq7v-94Lm-aR2p-Kd8s";
