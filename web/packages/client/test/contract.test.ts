// Type-level checks (enforced by `npm run typecheck`): the named types match DESIGN.md section 3.
import { describe, expectTypeOf, it } from "vitest";
import type { Domain, MailMessage, Mailbox, MailboxCreated, Member, OrgmailClient, Suppression } from "../src";

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
    expectTypeOf<Parameters<OrgmailClient["mail"]["mailboxes"]["assign"]>[0]>().toMatchTypeOf<{ id: string; assignedUserId: string | null }>();
    expectTypeOf<Awaited<ReturnType<OrgmailClient["mail"]["mailboxes"]["list"]>>["nextCursor"]>().toEqualTypeOf<string | null>();
    // Every operation the client offers is in the generated document (a missing one would be `never`).
    expectTypeOf<Parameters<OrgmailClient["mail"]["messages"]["send"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["messages"]["list"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["domains"]["verify"]>[0]>().not.toBeNever();
    expectTypeOf<Parameters<OrgmailClient["mail"]["members"]["remove"]>[0]>().not.toBeNever();
    expectTypeOf<NonNullable<Parameters<OrgmailClient["mail"]["messages"]["list"]>[0]>["status"]>().toEqualTypeOf<
      "queued" | "sent" | "failed" | "bounced" | "suppressed" | null | undefined
    >();
  });
});
