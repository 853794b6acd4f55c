/**
 * DESIGN.md types for operations whose routes are not in the service's OpenAPI document yet.
 *
 * `contract.ts` uses each of these only while its route is missing from the generated `openapi.ts`;
 * once the route lands and the types are regenerated, the generated types win automatically.
 */

type OrgScoped = { orgId?: string | null };
type ListInput = OrgScoped & { limit?: number; cursor?: string | null };

export type MailMessageStatus = "queued" | "sent" | "failed" | "bounced" | "suppressed";

export type MailMessage = {
  id: string;
  orgId: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  replyTo: string[];
  subject: string;
  status: MailMessageStatus;
  messageId: string;
  domain: string;
  dkimSelector: string | null;
  suppressedRecipients: string[];
  tags: { [key: string]: string };
  sizeBytes: number;
  rejectedRecipients: { email: string; code: number; message: string }[];
  relayResponse: string | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  sentAt: string | null;
};

export type MailSendInput = OrgScoped & {
  from: string;
  to: string | string[];
  cc?: string[];
  bcc?: string[];
  replyTo?: string | string[] | null;
  subject: string;
  text?: string | null;
  html?: string | null;
  headers?: { [key: string]: string };
  attachments?: { filename: string; content: string; contentType?: string | null; contentId?: string | null }[];
  tags?: { [key: string]: string };
  idempotencyKey?: string | null;
};

export type MessageListInput = ListInput & { status?: MailMessageStatus | null; recipient?: string | null };

export type Endpoints = {
  "/v1/mail/messages/send": { input: MailSendInput; output: { message: MailMessage } };
  "/v1/mail/messages/get": { input: OrgScoped & { id: string }; output: { message: MailMessage } };
  "/v1/mail/messages/list": { input: MessageListInput; output: { messages: MailMessage[]; nextCursor: string | null } };
};
