import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { DnsCheck, Domain } from "@orgmail/client";
import { DomainSetup, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const [pending, verified] = samples.sampleDomains as [Domain, Domain];
const records = samples.sampleDnsRecords(pending);
const listOf = (domains: Domain[]) => ({ body: { domains, nextCursor: null } });
const added: Domain = { ...pending, id: "dom_new", name: "mail.example.org", createdAt: "2026-12-01T10:00:00Z" };
const addedRecords = samples.sampleDnsRecords(added);
const required = addedRecords.filter((r) => r.required);
const notFound: DnsCheck[] = required.map((r) => ({ name: r.name, expected: r.value, found: [], ok: false }));
const allFound: DnsCheck[] = required.map((r) => ({ name: r.name, expected: r.value, found: [r.value], ok: true }));

/** A service with one org's domains, in memory; `checks` is what DNS would answer next. */
function domainApi(initial: Domain[], checks: { next: DnsCheck[] }) {
  let domains = [...initial];
  return stubApi({
    "domains/list": () => listOf(domains),
    "domains/add": (body) => {
      domains = [added, ...domains];
      expect(body).toEqual({ name: added.name });
      return { body: { domain: added, records: addedRecords } };
    },
    "domains/get": (body) => {
      const domain = domains.find((d) => d.id === body["id"]);
      if (!domain) return { status: 404, body: errorBody("not_found", "No such domain.") };
      return { body: { domain, records: samples.sampleDnsRecords(domain) } };
    },
    "domains/verify": (body) => {
      const ok = checks.next.every((c) => c.ok);
      domains = domains.map((d) => (d.id === body["id"] && ok ? { ...d, status: "verified", verifiedAt: "2026-12-01T10:05:00Z" } : d));
      return { body: { domain: domains.find((d) => d.id === body["id"])!, checks: checks.next } };
    },
  });
}

describe("DomainSetup", () => {
  it("shows a loading state", async () => {
    stubApi({ "domains/list": "hang" });
    renderWithProvider(<DomainSetup />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading domains…");
  });

  it("shows an empty state", async () => {
    stubApi({ "domains/list": listOf([]) });
    renderWithProvider(<DomainSetup />);
    expect(await screen.findByText(/No domains yet/)).toBeInTheDocument();
  });

  it("shows a failed load with its code and message", async () => {
    stubApi({ "domains/list": { status: 401, body: errorBody("unauthorized", "Missing or invalid API key.") } });
    renderWithProvider(<DomainSetup />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("unauthorized");
    expect(alert).toHaveTextContent("Missing or invalid API key.");
  });

  it("lists the domains with their status", async () => {
    stubApi({ "domains/list": listOf([pending, verified]) });
    renderWithProvider(<DomainSetup />);
    const table = await screen.findByRole("table", { name: "Domains" });
    const [, first, second] = within(table).getAllByRole("row");
    expect(within(first!).getByText("pending")).toHaveClass("om-badge--pending");
    expect(within(second!).getByText("verified")).toHaveClass("om-badge--verified");
    expect(within(second!).getAllByRole("time")[0]).toHaveAttribute("dateTime", verified.verifiedAt!);
  });

  it("adds a domain and shows the records to publish, each with copy buttons", async () => {
    const api = domainApi([verified], { next: notFound });
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const onAdded = vi.fn();
    renderWithProvider(<DomainSetup onAdded={onAdded} />);
    await screen.findByRole("table", { name: "Domains" });
    await userEvent.type(screen.getByLabelText("Domain name"), added.name);
    await userEvent.click(screen.getByRole("button", { name: "Add domain" }));

    const table = await screen.findByRole("table", { name: `DNS records for ${added.name}` });
    expect(onAdded).toHaveBeenCalledWith({ domain: added, records: addedRecords });
    expect(screen.getByLabelText("Domain name")).toHaveValue("");
    expect(within(screen.getByRole("table", { name: "Domains" })).getByRole("button", { name: added.name })).toHaveAttribute("aria-current", "true");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(5);
    expect(rows.map((row) => within(row).getAllByRole("cell")[3]!.textContent)).toEqual([
      expect.stringMatching(/^verification/),
      expect.stringMatching(/^dkim/),
      expect.stringMatching(/^dkim/),
      expect.stringMatching(/^spf/),
      expect.stringMatching(/^dmarc/),
    ]);
    expect(rows[0]).toHaveTextContent(`TXT_orgmail.${added.name}`);
    expect(within(rows[0]!).getByText("required")).toBeInTheDocument();
    expect(within(rows[3]!).getByText("optional")).toBeInTheDocument();
    expect(screen.getByText(/Publish these TXT records/)).toHaveTextContent("The 3 required records");

    const dkim = addedRecords[1]!;
    await userEvent.click(within(rows[1]!).getByRole("button", { name: `Copy the value of ${dkim.name} (dkim)` }));
    expect(writeText).toHaveBeenLastCalledWith(dkim.value);
    expect(within(rows[1]!).getByRole("button", { name: `Copy the value of ${dkim.name} (dkim): copied` })).toHaveTextContent("Copied");
    await userEvent.click(within(rows[1]!).getByRole("button", { name: `Copy the name ${dkim.name}` }));
    expect(writeText).toHaveBeenLastCalledWith(dkim.name);
    expect(api.pathsCalled()).toContain("domains/get");
  });

  it("shows a refused domain with its code and message", async () => {
    stubApi({
      "domains/list": listOf([]),
      "domains/add": { status: 409, body: errorBody("domain_taken", "That domain is already added.") },
    });
    renderWithProvider(<DomainSetup />);
    await userEvent.type(screen.getByLabelText("Domain name"), "example.com");
    await userEvent.click(screen.getByRole("button", { name: "Add domain" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("domain_taken That domain is already added.");
    expect(screen.getByLabelText("Domain name")).toHaveValue("example.com");
  });

  it("verifies: records not found show expected vs nothing found and not ok; once published, verified", async () => {
    const checks = { next: notFound };
    const api = domainApi([added, verified], checks);
    const onVerified = vi.fn();
    renderWithProvider(<DomainSetup onVerified={onVerified} />);
    await userEvent.click(await screen.findByRole("button", { name: added.name }));
    await screen.findByRole("table", { name: `DNS records for ${added.name}` });

    await userEvent.click(screen.getByRole("button", { name: "Verify" }));
    const result = await screen.findByRole("region", { name: "Verification result" });
    expect(within(result).getByRole("status")).toHaveTextContent("Not verified yet: 0 of 3 required records match.");
    const rows = within(within(result).getByRole("table", { name: "Verification checks" })).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(3);
    for (const [index, row] of rows.entries()) {
      expect(row).toHaveTextContent(required[index]!.name);
      expect(row).toHaveTextContent(required[index]!.value);
      expect(row).toHaveTextContent("nothing published");
      expect(within(row).getByText("not ok")).toHaveClass("om-badge--error");
    }
    expect(api.calls.find((c) => c.path === "domains/verify")!.body).toEqual({ id: added.id });
    expect(onVerified).not.toHaveBeenCalled();
    const records = screen.getByRole("region", { name: `${added.name} pending` });
    expect(records).toBeInTheDocument();

    checks.next = [{ ...allFound[0]!, found: ["something-else", allFound[0]!.expected] }, ...allFound.slice(1)];
    await userEvent.click(screen.getByRole("button", { name: "Verify" }));
    expect(await within(result).findByText(`Every required record matches: ${added.name} is verified.`)).toBeInTheDocument();
    const okRows = within(within(result).getByRole("table", { name: "Verification checks" })).getAllByRole("row").slice(1);
    expect(okRows[0]).toHaveTextContent(`something-else${required[0]!.value}`);
    for (const row of okRows) expect(within(row).getByText("ok")).toHaveClass("om-badge--ok");
    expect(screen.getByRole("region", { name: `${added.name} verified` })).toBeInTheDocument();
    const listRow = within(screen.getByRole("table", { name: "Domains" })).getByRole("row", { name: new RegExp(added.name) });
    expect(within(listRow).getByText("verified")).toBeInTheDocument();
    expect(onVerified).toHaveBeenCalledWith(expect.objectContaining({ id: added.id, status: "verified" }));
  });

  it("shows DNS that cannot answer with its code and message", async () => {
    stubApi({
      "domains/list": listOf([pending]),
      "domains/get": { body: { domain: pending, records } },
      "domains/verify": { status: 503, body: errorBody("dns_unavailable", "DNS did not answer within 5 s; try again.") },
    });
    renderWithProvider(<DomainSetup />);
    await userEvent.click(await screen.findByRole("button", { name: pending.name }));
    await userEvent.click(await screen.findByRole("button", { name: "Verify" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("dns_unavailable DNS did not answer within 5 s; try again.");
    expect(screen.queryByRole("region", { name: "Verification result" })).not.toBeInTheDocument();
  });

  it("shows the records' loading state and a failed get", async () => {
    stubApi({ "domains/list": listOf([pending]), "domains/get": "hang" });
    renderWithProvider(<DomainSetup />);
    await userEvent.click(await screen.findByRole("button", { name: pending.name }));
    expect(await screen.findByText("Loading DNS records…")).toBeInTheDocument();

    stubApi({ "domains/list": listOf([pending]), "domains/get": { status: 404, body: errorBody("not_found", "No such domain.") } });
    renderWithProvider(<DomainSetup title="Other" />);
    const region = screen.getByRole("region", { name: "Other" });
    await userEvent.click(await within(region).findByRole("button", { name: pending.name }));
    expect(await within(region).findByRole("alert")).toHaveTextContent("not_found No such domain.");
  });

  it("deletes a domain after confirmation, and shows domain_in_use", async () => {
    let inUse = true;
    const api = stubApi({
      "domains/list": listOf([pending, verified]),
      "domains/get": { body: { domain: pending, records } },
      "domains/delete": () =>
        inUse ? { status: 409, body: errorBody("domain_in_use", "Mailboxes still live on this domain.") } : { body: { ok: true } },
    });
    const onDeleted = vi.fn();
    renderWithProvider(<DomainSetup onDeleted={onDeleted} />);
    await userEvent.click(await screen.findByRole("button", { name: `Delete ${verified.name}` }));
    await userEvent.click(screen.getByRole("button", { name: "Delete domain" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("domain_in_use Mailboxes still live on this domain.");
    expect(onDeleted).not.toHaveBeenCalled();

    inUse = false;
    await userEvent.click(screen.getByRole("button", { name: pending.name }));
    await screen.findByRole("table", { name: `DNS records for ${pending.name}` });
    await userEvent.click(screen.getByRole("button", { name: `Delete ${pending.name}` }));
    await userEvent.click(screen.getByRole("button", { name: "Delete domain" }));
    expect(await screen.findByText(`${pending.name} is deleted, with its DKIM keys.`)).toBeInTheDocument();
    expect(screen.queryByRole("table", { name: `DNS records for ${pending.name}` })).not.toBeInTheDocument();
    expect(api.calls.filter((c) => c.path === "domains/delete").map((c) => c.body)).toEqual([{ id: verified.id }, { id: pending.id }]);
    expect(onDeleted).toHaveBeenCalledWith(pending);
  });

  it("works in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<DomainSetup preview />);
    expect(screen.getByRole("table", { name: `DNS records for ${pending.name}` })).toHaveTextContent(`_orgmail.${pending.name}`);
    await userEvent.click(screen.getByRole("button", { name: "Verify" }));
    expect(await screen.findByText(`Every required record matches: ${pending.name} is verified.`)).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText("Domain name"), "new.example.net");
    await userEvent.click(screen.getByRole("button", { name: "Add domain" }));
    expect(await screen.findByRole("table", { name: "DNS records for new.example.net" })).toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
