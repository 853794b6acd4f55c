// Type-level checks (enforced by `npm run typecheck`): the named types match DESIGN.md section 3.
import { describe, expectTypeOf, it } from "vitest";
import type {
  Domain,
  MailMessage,
  Mailbox,
  MailboxCreated,
  Member,
  MessageEvent,
  OrgmailClient,
  Suppression,
  Webhook,
  WebhookCreated,
  WebhookDelivery,
  WebhookEventType,
} from "../src";

describe("contract types", () => {
  it("match DESIGN.md", () => {
    expectTypeOf<Mailbox["assignedUserId"]>().toEqualTypeOf<string | null>();
    expectTypeOf<Mailbox["quotaMb"]>().toEqualTypeOf<number | null>();
    expectTypeOf<MailboxCreated["password"]>().toEqualTypeOf<string>();
    expectTypeOf<MailMessage["status"]>().toEqualTypeOf<"queued" | "sent" | "failed" | "bounced" | "suppressed">();
    expectTypeOf<MailMessage["to"]>().toEqualTypeOf<string[]>();
    expectTypeOf<Suppression["reason"]>().toEqualTypeOf<"manual" | "bounce" | "complaint" | "unsubscribe">();
    expectTypeOf<Member["userId"]>().toEqualTypeOf<string>();
    expectTypeOf<Domain["status"]>().toEqualTypeOf<"pending" | "verified">();
    expectTypeOf<MessageEvent["type"]>().toEqualTypeOf<
      "sent" | "failed" | "suppressed" | "delivered" | "deferred" | "bounced" | "complained"
    >();
    expectTypeOf<MessageEvent["bounceType"]>().toEqualTypeOf<"hard" | "soft" | null>();
    expectTypeOf<MessageEvent["smtpStatus"]>().toEqualTypeOf<string | null>();
    expectTypeOf<Webhook["events"]>().toEqualTypeOf<string[]>();
    expectTypeOf<Webhook["description"]>().toEqualTypeOf<string | null>();
    expectTypeOf<WebhookCreated["secret"]>().toEqualTypeOf<string>();
    expectTypeOf<WebhookDelivery["statusCode"]>().toEqualTypeOf<number | null>();
    expectTypeOf<WebhookDelivery["nextAttemptAt"]>().toEqualTypeOf<string | null>();
    expectTypeOf<WebhookEventType>().toEqualTypeOf<
      | "message.sent"
      | "message.failed"
      | "message.suppressed"
      | "message.delivered"
      | "message.deferred"
      | "message.bounced"
      | "message.complained"
      | "suppression.created"
      | "webhook.test"
    >();
    expectTypeOf<Parameters<OrgmailClient["mail"]["mailboxes"]["assign"]>[0]>().toMatchTypeOf<{ id: string; assignedUserId: string | null }>();
    expectTypeOf<Awaited<ReturnType<OrgmailClient["mail"]["mailboxes"]["list"]>>["nextCursor"]>().toEqualTypeOf<string | null>();
    // Every operation the client offers is in the generated document (a missing one would be `never`).
    expectTypeOf<Parameters<OrgmailClient["mail"]["messages"]["send"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["messages"]["list"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["domains"]["verify"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["members"]["remove"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["messages"]["events"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["webhooks"]["deliveries"]>[0]>().toMatchTypeOf<{ webhookId: string }>();
    expectTypeOf<Parameters<OrgmailClient["mail"]["webhooks"]["test"]>[0]>().not.toBeNever();
    expectTypeOf<NonNullable<Parameters<OrgmailClient["mail"]["messages"]["list"]>[0]>["status"]>().toEqualTypeOf<
      "queued" | "sent" | "failed" | "bounced" | "suppressed" | null | undefined
    >();
  });
});
