import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { MailboxDetail, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const support = samples.sampleMailboxes[0]!;
const settings = {
  username: support.address,
  imap: { host: "mail.example.net", port: 993, security: "tls" },
  submission: [
    { host: "mail.example.net", port: 465, security: "tls" },
    { host: "mail.example.net", port: 587, security: "starttls" },
  ],
  autoconfigUrl: "http://orgmail.test/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=support%40example.com",
};

describe("MailboxDetail", () => {
  it("asks for a selection when given no id, and calls nothing", () => {
    const api = stubApi({});
    renderWithProvider(<MailboxDetail />);
    expect(screen.getByText("Select a mailbox to see its details.")).toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });

  it("shows a loading state", async () => {
    stubApi({ "mailboxes/get": "hang" });
    renderWithProvider(<MailboxDetail id={support.id} />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading mailbox…");
  });

  it("shows a 404 as code and message", async () => {
    stubApi({ "mailboxes/get": { status: 404, body: errorBody("not_found", "No such resource.") } });
    renderWithProvider(<MailboxDetail id="mbx_gone" />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("not_found");
    expect(alert).toHaveTextContent("No such resource.");
  });

  it("shows the mailbox", async () => {
    const api = stubApi({ "mailboxes/get": { body: { mailbox: support } }, "mailboxes/clientSettings": { body: settings } });
    renderWithProvider(<MailboxDetail id={support.id} members={samples.sampleMembers} />);
    expect(await screen.findByText(support.address, { selector: "strong" })).toBeInTheDocument();
    expect(screen.getByText("Grace Hopper (u_grace)")).toBeInTheDocument();
    expect(screen.getByText("2048 MB")).toBeInTheDocument();
    expect(api.calls[0]!.body).toEqual({ id: support.id });
  });

  it("shows the mail client settings with copy buttons", async () => {
    const api = stubApi({ "mailboxes/get": { body: { mailbox: support } }, "mailboxes/clientSettings": { body: settings } });
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    renderWithProvider(<MailboxDetail id={support.id} />);
    const section = await screen.findByRole("region", { name: "Mail client settings" });
    const text = section.textContent ?? "";
    expect(text).toContain("mail.example.net");
    expect(text).toContain("port 993, SSL/TLS");
    expect(text).toContain("port 465, SSL/TLS");
    expect(text).toContain("port 587, STARTTLS");
    expect(within(section).getByText(settings.autoconfigUrl)).toBeInTheDocument();
    expect(api.calls.find((c) => c.path === "mailboxes/clientSettings")!.body).toEqual({ id: support.id });

    await userEvent.click(within(section).getByRole("button", { name: "Copy autoconfig URL" }));
    expect(writeText).toHaveBeenLastCalledWith(settings.autoconfigUrl);
    await userEvent.click(within(section).getByRole("button", { name: "Copy IMAP host" }));
    expect(writeText).toHaveBeenLastCalledWith("mail.example.net");
    await userEvent.click(within(section).getByRole("button", { name: "Copy username" }));
    expect(writeText).toHaveBeenLastCalledWith(support.address);
    expect(within(section).getByRole("button", { name: "Copy SMTP port 587 host" })).toBeInTheDocument();
  });

  it("says when submission is off", async () => {
    stubApi({
      "mailboxes/get": { body: { mailbox: support } },
      "mailboxes/clientSettings": { body: { ...settings, submission: [] } },
    });
    renderWithProvider(<MailboxDetail id={support.id} />);
    expect(await screen.findByText("Submission is not turned on for this service.")).toBeInTheDocument();
  });

  it("shows a settings failure beside the mailbox, with a retry", async () => {
    stubApi({
      "mailboxes/get": { body: { mailbox: support } },
      "mailboxes/clientSettings": { status: 503, body: errorBody("unavailable", "The database cannot be reached.") },
    });
    renderWithProvider(<MailboxDetail id={support.id} />);
    expect(await screen.findByRole("alert")).toHaveTextContent("unavailable");
    expect(screen.getByText(support.address, { selector: "strong" })).toBeInTheDocument();
  });

  it("renders a sample in preview mode", () => {
    const api = stubApi({});
    render(<MailboxDetail preview />);
    expect(screen.getByText(support.address, { selector: "strong" })).toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Mail client settings" })).toHaveTextContent("port 587, STARTTLS");
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
