/**
 * Sample data for `preview` mode: every widget renders with these and makes no network call, so a
 * design tool, a storybook or a settings page can show what the widget looks like before it is wired.
 */

import type {
  DnsCheck,
  DnsRecord,
  Domain,
  MailMessage,
  Mailbox,
  Member,
  MessageEvent,
  Suppression,
  Webhook,
  WebhookDelivery,
} from "@orgmail/client";

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
    source: "api",
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

function event(overrides: Partial<MessageEvent> & Pick<MessageEvent, "id" | "messageId" | "type" | "createdAt">): MessageEvent {
  return { orgId: ORG, recipient: null, bounceType: null, smtpStatus: null, diagnostic: null, ...overrides };
}

const [receipt, bounced, suppressed, failed] = sampleMessages as [MailMessage, MailMessage, MailMessage, MailMessage, MailMessage];

/** Each sample message's timeline, oldest first (the queued one has none yet). */
export const sampleMessageEvents: Record<string, MessageEvent[]> = {
  [receipt.id]: [
    event({ id: "evt_01JCPREVIEW0000000000000011", messageId: receipt.id, type: "sent", createdAt: "2026-11-24T16:40:00Z", diagnostic: "250 2.0.0 Ok: queued as 4Xk2Lq" }),
    event({
      id: "evt_01JCPREVIEW0000000000000012",
      messageId: receipt.id,
      type: "deferred",
      createdAt: "2026-11-24T16:41:12Z",
      recipient: "customer@example.org",
      smtpStatus: "4.2.2",
      diagnostic: "452 4.2.2 Mailbox full, try again later",
    }),
    event({
      id: "evt_01JCPREVIEW0000000000000013",
      messageId: receipt.id,
      type: "delivered",
      createdAt: "2026-11-24T17:10:03Z",
      recipient: "customer@example.org",
      smtpStatus: "2.0.0",
      diagnostic: "Action: delivered",
    }),
  ],
  [bounced.id]: [
    event({
      id: "evt_01JCPREVIEW0000000000000021",
      messageId: bounced.id,
      type: "bounced",
      createdAt: "2026-11-24T15:02:00Z",
      recipient: "nobody@example.net",
      bounceType: "hard",
      smtpStatus: "5.1.1",
      diagnostic: "550 5.1.1 <nobody@example.net>: Recipient address rejected",
    }),
  ],
  [suppressed.id]: [
    event({ id: "evt_01JCPREVIEW0000000000000031", messageId: suppressed.id, type: "suppressed", createdAt: "2026-11-23T08:00:00Z", diagnostic: "every recipient is suppressed" }),
  ],
  [failed.id]: [
    event({ id: "evt_01JCPREVIEW0000000000000041", messageId: failed.id, type: "failed", createdAt: "2026-11-22T12:00:00Z", diagnostic: "451 4.3.0 try again later" }),
  ],
};

/** Every event type a webhook can receive, as the service lists a webhook created without `events`. */
const ALL_WEBHOOK_EVENTS = [
  "message.sent",
  "message.failed",
  "message.suppressed",
  "message.delivered",
  "message.deferred",
  "message.bounced",
  "message.complained",
  "suppression.created",
  "webhook.test",
];

export const sampleWebhooks: Webhook[] = [
  {
    id: "whk_01JCPREVIEW0000000000000002",
    orgId: ORG,
    url: "https://hooks.example.com/orgmail/bounces",
    events: ["message.bounced", "message.complained", "suppression.created"],
    description: "Bounce and complaint handling",
    enabled: true,
    createdAt: "2026-11-21T10:15:00Z",
  },
  {
    id: "whk_01JCPREVIEW0000000000000001",
    orgId: ORG,
    url: "https://crm.example.com/webhooks/mail",
    events: ALL_WEBHOOK_EVENTS,
    description: null,
    enabled: true,
    createdAt: "2026-11-12T09:00:00Z",
  },
];

function delivery(overrides: Partial<WebhookDelivery> & Pick<WebhookDelivery, "id" | "webhookId" | "eventId" | "eventType" | "createdAt">): WebhookDelivery {
  return { attempt: 1, statusCode: 200, durationMs: 84, error: null, nextAttemptAt: null, ...overrides };
}

/** Each sample webhook's delivery log, newest first. */
export const sampleWebhookDeliveries: Record<string, WebhookDelivery[]> = {
  [sampleWebhooks[0]!.id]: [
    delivery({
      id: "whd_01JCPREVIEW0000000000000013",
      webhookId: sampleWebhooks[0]!.id,
      eventId: "evt_01JCPREVIEW0000000000000021",
      eventType: "message.bounced",
      attempt: 2,
      durationMs: 131,
      createdAt: "2026-11-24T15:02:36Z",
    }),
    delivery({
      id: "whd_01JCPREVIEW0000000000000012",
      webhookId: sampleWebhooks[0]!.id,
      eventId: "evt_01JCPREVIEW0000000000000021",
      eventType: "message.bounced",
      statusCode: 503,
      durationMs: 2040,
      error: "answered 503: Service Unavailable",
      nextAttemptAt: "2026-11-24T15:02:36Z",
      createdAt: "2026-11-24T15:02:06Z",
    }),
    delivery({
      id: "whd_01JCPREVIEW0000000000000011",
      webhookId: sampleWebhooks[0]!.id,
      eventId: "evt_01JCPREVIEW0000000000000001",
      eventType: "webhook.test",
      createdAt: "2026-11-21T10:16:00Z",
    }),
  ],
  [sampleWebhooks[1]!.id]: [],
};

export const sampleWebhookSecret = "whsec_cHJldmlldy1vbmx5LW5vdC1hLXJlYWwtc2VjcmV0IQ==";

export const sampleDomains: Domain[] = [
  {
    id: "dom_01JCPREVIEW0000000000000002",
    orgId: ORG,
    name: "news.example.com",
    status: "pending",
    dkimSelectors: ["om2026b-rsa", "om2026b-ed"],
    verifiedAt: null,
    createdAt: "2026-11-24T09:00:00Z",
  },
  {
    id: "dom_01JCPREVIEW0000000000000001",
    orgId: ORG,
    name: "example.com",
    status: "verified",
    dkimSelectors: ["om2026a-rsa", "om2026a-ed"],
    verifiedAt: "2026-11-02T09:20:00Z",
    createdAt: "2026-11-02T09:00:00Z",
  },
];

const SAMPLE_RSA_KEY =
  "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwPreviewOnlyNotARealKeyq4Jm1s9Zk2hT7yVwB3nC8rXpL0aGfE6uD" +
  "5iKoN2bQ1tY7vR3sW9zM4xH8jA6cF0eLpU2gIyT5dS1nK7wO3qZ9rV4mB6hX2tJ8fC0aE5uN1sY7iG3kD9pW4lR6oT2vM8bQ5cZ1x" +
  "H7jL3nF9eA0sU6gK4yP2wI8tB5rD1mO7qV3zC9hX6fN2jS4aE0lG8uT5kY1iR7wM3oP9bQIDAQAB";
const SAMPLE_ED25519_KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/** The records `domains/add` answers for a domain, in its order: verification, DKIM, SPF, DMARC. */
export function sampleDnsRecords(domain: Pick<Domain, "name" | "dkimSelectors">): DnsRecord[] {
  const [rsa = "om-rsa", ed25519 = "om-ed"] = domain.dkimSelectors;
  return [
    { type: "TXT", name: `_orgmail.${domain.name}`, value: "orgmail-verification=pv7Qk2mZ9xR4tL8wN3cJ", purpose: "verification", required: true },
    { type: "TXT", name: `${rsa}._domainkey.${domain.name}`, value: `v=DKIM1; k=rsa; p=${SAMPLE_RSA_KEY}`, purpose: "dkim", required: true },
    { type: "TXT", name: `${ed25519}._domainkey.${domain.name}`, value: `v=DKIM1; k=ed25519; p=${SAMPLE_ED25519_KEY}`, purpose: "dkim", required: true },
    { type: "TXT", name: domain.name, value: "v=spf1 mx ~all", purpose: "spf", required: false },
    { type: "TXT", name: `_dmarc.${domain.name}`, value: "v=DMARC1; p=none; adkim=r; aspf=r", purpose: "dmarc", required: false },
  ];
}

/** What `domains/verify` answers once every required record is published. */
export function sampleDnsChecks(domain: Pick<Domain, "name" | "dkimSelectors">): DnsCheck[] {
  return sampleDnsRecords(domain)
    .filter((record) => record.required)
    .map((record) => ({ name: record.name, expected: record.value, found: [record.value], ok: true }));
}
