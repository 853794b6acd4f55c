/**
 * The console in a real browser against the real service: everything a newcomer does by hand after
 * `make run` and `orgmail demo`, with a screenshot of each step under test-artifacts/e2e/.
 */

import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, startSession } from "./service";
import type { Session, Stack } from "./service";

let stack: Stack;
let session: Session;
let page: Page;

async function shot(name: string) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

function section(title: string) {
  return page.getByRole("region", { name: title, exact: true });
}

beforeAll(async () => {
  session = await startSession();
  ({ stack, page } = session);
});

afterAll(async () => {
  await session?.close();
});

describe("the console", () => {
  it("redirects / to the console and asks for an API key once", async () => {
    await page.goto(stack.baseUrl + "/");
    expect(new URL(page.url()).pathname).toBe("/console/");
    await page.getByLabel("API key", { exact: true }).fill("omk_not_a_real_key");
    await page.getByRole("button", { name: "Open console" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("unauthorized");
    await shot("01-wrong-key");

    await page.getByLabel("API key", { exact: true }).fill(stack.demo.apiKey);
    await page.getByRole("button", { name: "Open console" }).click();
    await section("Mailboxes").getByRole("table").waitFor();
    await section("Mailboxes").getByText(stack.demo.mailbox.address).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("orgmail.apiKey"))).toBe(stack.demo.apiKey);

    await page.reload(); // the key is kept for the tab: no second prompt
    await section("Mailboxes").getByRole("table").waitFor();
    expect(await page.getByLabel("API key", { exact: true }).count()).toBe(0);
    await shot("02-console");
  });

  it("creates a mailbox and shows its password once", async () => {
    const form = section("Create mailbox");
    await form.getByLabel("Address").fill(`support@${stack.demo.domain}`);
    await form.getByLabel("Display name").fill("Support");
    await form.getByRole("button", { name: "Create mailbox" }).click();

    const password = form.getByLabel("Password", { exact: true });
    await password.waitFor();
    const value = await password.inputValue();
    expect(value.length).toBeGreaterThanOrEqual(20);
    await expect(form.getByText("you will not see this password again").isVisible()).resolves.toBe(true);
    await form.getByRole("button", { name: "Copy password" }).click();
    await form.getByRole("button", { name: "Copied" }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(value);
    await shot("03-mailbox-created");

    // The shown password is the real one: it verifies against the stored Argon2id hash.
    const verified = stack.python(
      [
        "import sqlite3, sys, argon2",
        "db = sqlite3.connect(sys.argv[1])",
        "(stored,) = db.execute('select password_hash from mailboxes where address = ?', (sys.argv[2],)).fetchone()",
        "print(argon2.PasswordHasher().verify(stored.removeprefix('{ARGON2ID}'), sys.argv[3]))",
      ].join("\n"),
      join(stack.dataDir, "orgmail.db"),
      `support@${stack.demo.domain}`,
      value,
    );
    expect(verified.trim()).toBe("True");

    await form.getByRole("button", { name: "Done, I saved it" }).click();
    expect(await page.getByText(value).count()).toBe(0);
    expect(await form.getByLabel("Password", { exact: true }).count()).toBe(0);
    await section("Mailboxes").getByText(`support@${stack.demo.domain}`).waitFor();
  });

  it("shows 409 mailbox_taken to the user", async () => {
    const form = section("Create mailbox");
    await form.getByLabel("Address").fill(`support@${stack.demo.domain}`);
    await form.getByRole("button", { name: "Create mailbox" }).click();
    const alert = form.getByRole("alert");
    await alert.waitFor();
    const text = await alert.textContent();
    expect(text).toContain("mailbox_taken");
    expect(text).toContain("already exists");
    await shot("04-mailbox-taken");
  });

  it("assigns the mailbox to a member", async () => {
    const list = section("Mailboxes");
    const address = `support@${stack.demo.domain}`;
    await list.getByRole("button", { name: `Assign ${address}` }).click();
    await list.getByLabel(`Assign ${address} to`).selectOption("bob");
    await list.getByRole("button", { name: "Save" }).click();
    await list.getByText(`${address} is now assigned to Bob Builder (bob).`).waitFor();
    await list.getByRole("row", { name: new RegExp(address) }).first().getByText("Bob Builder (bob)").waitFor();
    await shot("05-assigned");

    const mailboxes = await stack.api("/v1/mail/mailboxes/list", {});
    const mailbox = mailboxes.body.mailboxes.find((m) => m.address === address);
    expect(mailbox?.assignedUserId).toBe("bob");

    // Selecting it shows the detail with the new owner.
    await list.getByRole("button", { name: address, exact: true }).click();
    await section("Mailbox").getByText("Bob Builder (bob)").waitFor();
  });

  it("sends a mail and sees it in the log as sent", async () => {
    const form = section("Send mail");
    const from = form.getByLabel("From");
    if ((await from.inputValue()) === "") await from.fill(`hello@${stack.demo.domain}`);
    await form.getByLabel("To").fill("someone@example.org");
    await form.getByLabel("Subject").fill("Hello from the browser test");
    await form.getByLabel("Text").fill("It works.");
    await form.getByRole("button", { name: "Send" }).click();
    await form.getByRole("status").filter({ hasText: "is sent" }).waitFor();

    const log = section("Message log");
    const row = log.getByRole("row", { name: /Hello from the browser test/ });
    await row.getByText("sent", { exact: true }).waitFor();
    expect(stack.relayOutput()).toContain("Subject: Hello from the browser test");

    await row.getByRole("button", { name: "Hello from the browser test" }).click();
    const detail = section("Message");
    await detail.getByText("Relay response").waitFor();
    // The timeline is the service's: one `sent` event for the whole message, written with the outcome.
    const timeline = detail.getByRole("table", { name: "Timeline" });
    const sentEvent = timeline.getByRole("row").filter({ has: page.getByText("sent", { exact: true }) });
    await sentEvent.waitFor();
    expect(await timeline.getByRole("row").count()).toBe(2); // the header and the one event
    expect(await sentEvent.textContent()).toContain("whole message");
    const messages = await stack.api("/v1/mail/messages/list", {});
    const sent = messages.body.messages.find((m) => m.subject === "Hello from the browser test")!;
    const events = await stack.api("/v1/mail/messages/events", { id: sent.id });
    expect(events.body.events.map((e) => e.type)).toEqual(["sent"]);
    expect(await sentEvent.getByRole("time").getAttribute("datetime")).toBe(events.body.events[0]!.createdAt);
    await shot("06-sent");

    // The status filter asks the service: nothing has failed, and the sent message is among "sent".
    await log.getByLabel("Status").selectOption("failed");
    await log.getByText("No failed messages.").waitFor();
    await log.getByLabel("Status").selectOption("sent");
    await row.getByText("sent", { exact: true }).waitFor();
  });

  it("adds and removes a suppression", async () => {
    const suppressions = section("Suppressions");
    await suppressions.getByLabel("Email").fill("blocked@example.org");
    await suppressions.getByLabel("Reason").selectOption("complaint");
    await suppressions.getByLabel("Note").fill("added by the browser test");
    await suppressions.getByRole("button", { name: "Add suppression" }).click();
    const row = suppressions.getByRole("row", { name: /blocked@example\.org/ });
    await row.getByText("complaint").waitFor();
    await row.getByText("added by the browser test").waitFor();
    await shot("07-suppressed");
    expect((await stack.api("/v1/mail/suppressions/list", {})).body.suppressions.map((s) => s.email)).toContain(
      "blocked@example.org",
    );

    await suppressions.getByRole("button", { name: "Remove blocked@example.org" }).click();
    await suppressions.getByText("blocked@example.org can receive mail again.").waitFor();
    expect(await row.count()).toBe(0);
    expect((await stack.api("/v1/mail/suppressions/list", {})).body.suppressions.map((s) => s.email)).not.toContain(
      "blocked@example.org",
    );
  });

  it("deletes a mailbox after confirmation", async () => {
    const list = section("Mailboxes");
    const address = `support@${stack.demo.domain}`;
    await list.getByRole("button", { name: `Delete ${address}` }).click();
    await list.getByRole("button", { name: "Delete mailbox" }).click();
    await list.getByRole("button", { name: address, exact: true }).waitFor({ state: "detached" });
    await shot("08-deleted");
  });

  it("renders every widget in preview mode without calling the service", async () => {
    // Eight widgets for mailboxes, mail and suppressions; WebhookList, WebhookDeliveries and DomainSetup.
    const calls: string[] = [];
    page.on("request", (request) => {
      if (request.url().includes("/v1/")) calls.push(request.url());
    });
    await page.goto(stack.baseUrl + "/console/?preview");
    const widgets = page.getByRole("region", { name: / preview$/ });
    await page.getByRole("region", { name: "Message log preview" }).getByRole("table").waitFor();
    expect(await widgets.count()).toBe(11);
    await shot("09-preview");
    expect(calls).toEqual([]);
    expect(session.pageErrors).toEqual([]);
  });
});
