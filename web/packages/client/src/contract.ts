/**
 * Input and output types of every operation, read from the generated OpenAPI types (`openapi.ts`).
 *
 * Named types (Mailbox, MailMessage, …) are taken from the operations' answers rather than from schema
 * names, so a renamed Pydantic model changes nothing here.
 */

import type { paths } from "./openapi";

type PostOf<Item> = Item extends { post: infer Operation } ? Operation : never;
type JsonBody<Operation> = Operation extends { requestBody?: { content: { "application/json": infer Body } } }
  ? Body
  : never;
type JsonOk<Operation> = Operation extends { responses: { 200: { content: { "application/json": infer Body } } } }
  ? Body
  : never;

type Generated<P extends keyof paths> = {
  input: Exclude<JsonBody<PostOf<paths[P]>>, null | undefined>;
  output: JsonOk<PostOf<paths[P]>>;
};

/** An operation the document does not have is `never`: calling it does not type-check. */
type Endpoint<P extends string> = P extends keyof paths ? Generated<P> : never;

export type Input<P extends string> = Endpoint<P>["input"];
export type Output<P extends string> = Endpoint<P>["output"];

export type Mailbox = Output<"/v1/mail/mailboxes/get">["mailbox"];
export type MailboxCreateInput = Input<"/v1/mail/mailboxes/create">;
export type MailboxCreated = Output<"/v1/mail/mailboxes/create">;
export type MailboxAssignInput = Input<"/v1/mail/mailboxes/assign">;
export type ClientSettings = Output<"/v1/mail/mailboxes/clientSettings">;
export type MailServer = ClientSettings["imap"];

export type MailMessage = Output<"/v1/mail/messages/get">["message"];
export type MailMessageStatus = MailMessage["status"];
export type MailSendInput = Input<"/v1/mail/messages/send">;
export type MessageListInput = Input<"/v1/mail/messages/list">;
export type MessageEvent = Output<"/v1/mail/messages/events">["events"][number];
export type MessageEventType = MessageEvent["type"];

export type Suppression = Output<"/v1/mail/suppressions/add">["suppression"];
export type SuppressionReason = Suppression["reason"];
export type SuppressionAddInput = Input<"/v1/mail/suppressions/add">;

export type Member = Output<"/v1/mail/members/add">["member"];
export type MemberAddInput = Input<"/v1/mail/members/add">;

export type Domain = Output<"/v1/mail/domains/get">["domain"];
export type DnsRecord = Output<"/v1/mail/domains/get">["records"][number];
export type DnsCheck = Output<"/v1/mail/domains/verify">["checks"][number];
export type DomainWithRecords = Output<"/v1/mail/domains/get">;
export type DomainVerified = Output<"/v1/mail/domains/verify">;

export type Webhook = Output<"/v1/mail/webhooks/get">["webhook"];
export type WebhookCreateInput = Input<"/v1/mail/webhooks/create">;
export type WebhookCreated = Output<"/v1/mail/webhooks/create">;
/** The event types a webhook can subscribe to: `message.<MessageEventType>`, `suppression.created`, `webhook.test`. */
export type WebhookEventType = NonNullable<WebhookCreateInput["events"]>[number];
export type WebhookDelivery = Output<"/v1/mail/webhooks/deliveries">["deliveries"][number];

export type ListInput = Input<"/v1/mail/mailboxes/list">;
export type Ok = Output<"/v1/mail/mailboxes/delete">;
