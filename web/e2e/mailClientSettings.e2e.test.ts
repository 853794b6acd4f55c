/**
 * A member's mail client settings in a real browser against the real service: the console's mailbox
 * detail names the IMAP server and the autoconfig URL, the copy button copies it, and that URL answers
 * Thunderbird's clientConfig for the mailbox's domain (and 404 for a domain orgmail does not serve).
 */

import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, openConsole, startSession } from "./service";
import type { Session, Stack } from "./service";

let stack: Stack;
let session: Session;
let page: Page;

beforeAll(async () => {
  session = await startSession();
  ({ stack, page } = session);
});

afterAll(async () => {
  await session?.close();
});

describe("mail client settings", () => {
  it("shows the settings of the selected mailbox and copies an autoconfig URL that answers", async () => {
    await openConsole(page, stack);
    const address = stack.demo.mailbox.address;
    const list = page.getByRole("region", { name: "Mailboxes", exact: true });
    await list.getByRole("button", { name: address, exact: true }).click();

    const settings = page.getByRole("region", { name: "Mail client settings", exact: true });
    await settings.waitFor();
    const text = (await settings.textContent()) ?? "";
    // No ORGMAIL_MAIL_HOST: the host the browser used; IMAP's default port; no submission listener on.
    expect(text).toContain(`${address}`);
    expect(text).toContain("127.0.0.1");
    expect(text).toContain("port 993, SSL/TLS");
    expect(text).toContain("Submission is not turned on for this service.");
    await page.screenshot({ path: join(ARTIFACTS, "mail-client-settings.png"), fullPage: true });

    await settings.getByRole("button", { name: "Copy autoconfig URL" }).click();
    await settings.getByRole("button", { name: "Copy autoconfig URL: copied" }).waitFor();
    const url = await page.evaluate(() => navigator.clipboard.readText());
    expect(url).toBe(`${stack.baseUrl}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=${encodeURIComponent(address)}`);

    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    const xml = await response!.text();
    expect(xml).toContain(`<emailProvider id="${stack.demo.domain}">`);
    expect(xml).toContain('<incomingServer type="imap"><hostname>127.0.0.1</hostname><port>993</port><socketType>SSL</socketType>');
    expect(xml).toContain("<username>%EMAILADDRESS%</username>");

    const other = await fetch(`${stack.baseUrl}/mail/config-v1.1.xml?emailaddress=someone%40not-served.example`);
    expect(other.status).toBe(404);
    expect(session.pageErrors).toEqual([]);
  });
});
