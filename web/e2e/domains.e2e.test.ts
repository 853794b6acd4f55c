/**
 * DomainSetup in the console against the real service: add a domain, see the records to publish,
 * verify against the tests' own DNS server (nothing published: every check not ok; then published
 * from what the page showed: verified), and delete. Screenshots under test-artifacts/e2e/.
 */

import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, openConsole, startSession } from "./service";
import type { Session, Stack } from "./service";

let stack: Stack;
let session: Session;
let page: Page;
// A .example name, as an organization's private DNS might serve: orgmail accepts it (DESIGN.md §3).
const DOMAIN = "shop.e2e.example";

async function shot(name: string) {
  await page.screenshot({ path: join(ARTIFACTS, `domains-${name}.png`), fullPage: true });
}

function widget() {
  return page.getByRole("region", { name: "Domains", exact: true });
}

/** The body rows' cells as text: a cell's value (its <code>, or the first line of a stacked cell), not its copy button or hint. */
async function cells(table: ReturnType<Page["getByRole"]>): Promise<string[][]> {
  return table.locator("tbody tr").evaluateAll((rows) =>
    rows.map((row) =>
      Array.from(row.querySelectorAll("td"), (cell) => (cell.querySelector("code, .om-stack > :first-child") ?? cell).textContent ?? ""),
    ),
  );
}

beforeAll(async () => {
  session = await startSession();
  ({ stack, page } = session);
  await openConsole(page, stack);
});

afterAll(async () => {
  await session?.close();
});

describe("domains in the console", () => {
  it("lists the org's domains", async () => {
    const list = widget().getByRole("table", { name: "Domains" });
    const row = list.getByRole("row", { name: new RegExp(stack.demo.domain.replace(/\./g, "\\.")) });
    await row.getByText("verified", { exact: true }).waitFor();
  });

  it("adds a domain and shows the DNS records to publish, as the service has them", async () => {
    await widget().getByLabel("Domain name").fill(DOMAIN);
    await widget().getByRole("button", { name: "Add domain" }).click();
    const records = widget().getByRole("table", { name: `DNS records for ${DOMAIN}` });
    await records.waitFor();
    await widget().getByRole("region", { name: `${DOMAIN} pending` }).waitFor();
    await widget().getByRole("table", { name: "Domains" }).getByRole("button", { name: DOMAIN, exact: true }).waitFor();
    await shot("01-added");

    const listed = await stack.api("/v1/mail/domains/list", {});
    const domain = listed.body.domains.find((d) => d.name === DOMAIN)!;
    expect(domain.status).toBe("pending");
    const stored = await stack.api("/v1/mail/domains/get", { id: domain.id });
    const shown = await cells(records);
    // Type, name, value, purpose, required: every record the service answers, in its order.
    expect(shown).toEqual(stored.body.records.map((r) => [r.type, r.name, r.value, r.purpose, r.required ? "required" : "optional"]));
    expect(stored.body.records.map((r) => r.purpose)).toEqual(["verification", "dkim", "dkim", "spf", "dmarc"]);

    // The copy buttons put the exact value on the clipboard.
    const verification = stored.body.records[0]!;
    await records.getByRole("button", { name: `Copy the value of ${verification.name} (verification)` }).click();
    await records.getByRole("button", { name: `Copy the value of ${verification.name} (verification): copied` }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(verification.value);
    const dkim = stored.body.records[1]!;
    await records.getByRole("button", { name: `Copy the value of ${dkim.name} (dkim)` }).click();
    await records.getByRole("button", { name: `Copy the value of ${dkim.name} (dkim): copied` }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(dkim.value);
  });

  it("verifies with nothing published: each check shows what it expected, found nothing, not ok", async () => {
    const queriesBefore = stack.dns.queries.length;
    await widget().getByRole("button", { name: "Verify" }).click();
    const result = widget().getByRole("region", { name: "Verification result" });
    await result.getByText("Not verified yet: 0 of 3 required records match.").waitFor();
    const checks = await cells(result.getByRole("table", { name: "Verification checks" }));
    const stored = await stack.api("/v1/mail/domains/get", {
      id: (await stack.api("/v1/mail/domains/list", {})).body.domains.find((d) => d.name === DOMAIN)!.id,
    });
    const required = stored.body.records.filter((r) => r.required);
    expect(checks).toEqual(required.map((r) => [r.name, r.value, "nothing published", "not ok"]));
    // A real round trip: the service asked the DNS server for every required name.
    const asked = stack.dns.queries.slice(queriesBefore);
    for (const record of required) expect(asked).toContain(`${record.name.toLowerCase()} TXT`);
    expect(stored.body.domain.status).toBe("pending");
    await widget().getByRole("region", { name: `${DOMAIN} pending` }).waitFor();
    await shot("02-not-verified");
  });

  it("verifies once the records the page shows are published", async () => {
    // Publish exactly what the person would copy from the page.
    for (const [, name, value] of await cells(widget().getByRole("table", { name: `DNS records for ${DOMAIN}` }))) {
      stack.dns.publish(name!, value!);
    }
    await widget().getByRole("button", { name: "Verify" }).click();
    const result = widget().getByRole("region", { name: "Verification result" });
    await result.getByText(`Every required record matches: ${DOMAIN} is verified.`).waitFor();
    const checks = await cells(result.getByRole("table", { name: "Verification checks" }));
    expect(checks.map((row) => row[3])).toEqual(["ok", "ok", "ok"]);
    for (const row of checks) expect(row[2]).toBe(row[1]); // found what was expected
    await widget().getByRole("region", { name: `${DOMAIN} verified` }).waitFor();
    await widget().getByRole("table", { name: "Domains" }).getByRole("row", { name: new RegExp(DOMAIN) }).getByText("verified", { exact: true }).waitFor();
    await shot("03-verified");

    const listed = await stack.api("/v1/mail/domains/list", {});
    expect(listed.body.domains.find((d) => d.name === DOMAIN)?.status).toBe("verified");
  });

  it("refuses to delete a domain with mailboxes, and deletes one after confirmation", async () => {
    await widget().getByRole("button", { name: `Delete ${stack.demo.domain}` }).click();
    await widget().getByRole("button", { name: "Delete domain" }).click();
    const alert = widget().getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toContain("domain_in_use");
    await alert.getByRole("button", { name: "Dismiss" }).click();

    await widget().getByRole("button", { name: `Delete ${DOMAIN}` }).click();
    await widget().getByRole("button", { name: "Delete domain" }).click();
    await widget().getByText(`${DOMAIN} is deleted, with its DKIM keys.`).waitFor();
    await widget().getByRole("table", { name: "Domains" }).getByRole("button", { name: DOMAIN, exact: true }).waitFor({ state: "detached" });
    expect(await widget().getByRole("table", { name: `DNS records for ${DOMAIN}` }).count()).toBe(0);
    await shot("04-deleted");
    expect((await stack.api("/v1/mail/domains/list", {})).body.domains.map((d) => d.name)).toEqual([stack.demo.domain]);
    expect(session.pageErrors).toEqual([]);
  });
});
