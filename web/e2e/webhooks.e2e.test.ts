/**
 * WebhookList in the console against the real service and a real endpoint on loopback: create a
 * webhook and see its secret once, send a test, watch the dispatcher's deliveries appear (a 503, then
 * the retry's 200), check the signature with the secret the page showed, and delete it.
 */

import { join } from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, openConsole, startSession } from "./service";
import type { Session, Stack } from "./service";
import { signatureIsValid, startWebhookReceiver } from "./webhookReceiver";
import type { WebhookReceiver } from "./webhookReceiver";

let stack: Stack;
let receiver: WebhookReceiver;
let session: Session;
let page: Page;
let endpoint: string;
let secret: string;

async function shot(name: string) {
  await page.screenshot({ path: join(ARTIFACTS, `webhooks-${name}.png`), fullPage: true });
}

function widget() {
  return page.getByRole("region", { name: "Webhooks", exact: true });
}

/** Presses the deliveries' Refresh until `row` shows: the dispatcher delivers on its own schedule. */
async function refreshUntil(panel: Locator, row: Locator, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await row.count()) === 0) {
    if (Date.now() > deadline) throw new Error(`no such delivery row within ${timeoutMs} ms:\n${await panel.textContent()}`);
    await page.waitForTimeout(500);
    await panel.getByRole("button", { name: "Refresh" }).click();
    await panel.getByRole("status").waitFor({ state: "detached" }).catch(() => {}); // "Loading deliveries…", if shown
  }
}

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  endpoint = receiver.url("/orgmail/events");
  session = await startSession();
  ({ stack, page } = session);
  await openConsole(page, stack);
});

afterAll(async () => {
  await session?.close();
  await receiver?.stop();
});

describe("webhooks in the console", () => {
  it("starts with none, and shows a refused URL with its code and field", async () => {
    await widget().getByText(/No webhooks yet/).waitFor();
    const form = widget().getByRole("form", { name: "Add webhook" });
    await form.getByLabel("Endpoint URL").fill("ftp://files.example.com/in");
    await form.getByRole("button", { name: "Add webhook" }).click();
    const alert = form.getByRole("alert");
    await alert.waitFor();
    const text = await alert.textContent();
    expect(text).toContain("invalid_request");
    expect(text).toContain("url");
    await alert.getByRole("button", { name: "Dismiss" }).click();
  });

  it("creates a webhook for every event and shows its secret once", async () => {
    const form = widget().getByRole("form", { name: "Add webhook" });
    const boxes = form.getByRole("checkbox");
    expect(await boxes.count()).toBe(8);
    for (const box of await boxes.all()) expect(await box.isChecked()).toBe(true);
    await form.getByLabel("Endpoint URL").fill(endpoint);
    await form.getByLabel("Description").fill("the browser test's endpoint");
    await form.getByRole("button", { name: "Add webhook" }).click();

    const field = widget().getByLabel("Signing secret", { exact: true });
    await field.waitFor();
    secret = await field.inputValue();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    await expect(widget().getByText("you will not see this secret again").isVisible()).resolves.toBe(true);
    await widget().getByRole("button", { name: "Copy secret" }).click();
    await widget().getByRole("button", { name: "Copied" }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await shot("01-secret");

    const listed = await stack.api("/v1/mail/webhooks/list", {});
    expect(listed.body.webhooks.map((w) => [w.url, w.description, w.enabled])).toEqual([[endpoint, "the browser test's endpoint", true]]);
    expect(JSON.stringify(listed.body)).not.toContain(secret);

    await widget().getByRole("button", { name: "Done, I saved it" }).click();
    expect(await page.getByText(secret).count()).toBe(0);
    expect(await widget().getByLabel("Signing secret", { exact: true }).count()).toBe(0);
    const row = widget().getByRole("table", { name: "Webhooks" }).getByRole("row", { name: new RegExp(endpoint) });
    await row.getByText("All events").waitFor();
    await row.getByText("enabled", { exact: true }).waitFor();
    // A reload asks the service again, which never answers the secret.
    await widget().getByRole("button", { name: "Refresh" }).first().click();
    await row.waitFor();
    expect(await page.content()).not.toContain(secret);
  });

  it("sends a test event and shows its deliveries: a 503 with its next attempt, then the retry's 200", async () => {
    receiver.answerNext(503);
    await widget().getByRole("button", { name: `Send a test event to ${endpoint}` }).click();
    await widget().getByRole("status").filter({ hasText: "A webhook.test event is on its way" }).waitFor();
    const panel = widget().getByRole("region", { name: "Recent deliveries" });
    await panel.waitFor();
    const table = panel.getByRole("table", { name: "Recent deliveries" });

    const failed = table.getByRole("row").filter({ hasText: "answered 503" });
    await refreshUntil(panel, failed);
    const failedText = (await failed.textContent()) ?? "";
    expect(failedText).toContain("webhook.test");
    expect(failedText).toContain("answered 503: try again later"); // the endpoint's own words
    expect(await failed.getByRole("time").count()).toBe(2); // when, and the next attempt
    await shot("02-first-attempt");

    // The dispatcher retries about 5 s later, with the same webhook-id.
    const delivered = table.getByRole("row").filter({ hasText: "none: delivered" });
    await refreshUntil(panel, delivered);
    const deliveredText = (await delivered.textContent()) ?? "";
    expect(deliveredText).toContain("200");
    await shot("03-delivered");

    const deliveries = await stack.api("/v1/mail/webhooks/deliveries", {
      webhookId: (await stack.api("/v1/mail/webhooks/list", {})).body.webhooks[0]!.id,
    });
    expect(deliveries.body.deliveries.map((d) => [d.attempt, d.statusCode, d.eventType])).toEqual([
      [2, 200, "webhook.test"],
      [1, 503, "webhook.test"],
    ]);
    const eventId = deliveries.body.deliveries[0]!.eventId;
    expect(deliveredText).toContain(eventId);

    // What the endpoint got: two POSTs of one event, signed with the secret the page showed once.
    const posts = receiver.posts.filter((p) => p.path === "/orgmail/events");
    expect(posts.map((p) => p.status)).toEqual([503, 200]);
    for (const post of posts) {
      expect(post.headers["webhook-id"]).toBe(eventId);
      expect(signatureIsValid(post, secret)).toBe(true);
      expect(JSON.parse(post.body)).toMatchObject({ type: "webhook.test", data: { webhookId: deliveries.body.deliveries[0]!.webhookId } });
    }
    expect(signatureIsValid(posts[0]!, "whsec_" + Buffer.alloc(32).toString("base64"))).toBe(false);
  });

  it("deletes the webhook after confirmation", async () => {
    await widget().getByRole("button", { name: `Delete the webhook to ${endpoint}` }).click();
    await widget().getByRole("button", { name: "Delete webhook" }).click();
    await widget().getByText(`The webhook to ${endpoint} is deleted, with its delivery log.`).waitFor();
    await widget().getByText(/No webhooks yet/).waitFor();
    await shot("04-deleted");
    expect((await stack.api("/v1/mail/webhooks/list", {})).body.webhooks).toEqual([]);
    expect(session.pageErrors).toEqual([]);
  });
});
