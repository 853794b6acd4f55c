import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { MailboxDetail, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const support = samples.sampleMailboxes[0]!;

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
    const api = stubApi({ "mailboxes/get": { body: { mailbox: support } } });
    renderWithProvider(<MailboxDetail id={support.id} members={samples.sampleMembers} />);
    expect(await screen.findByText(support.address)).toBeInTheDocument();
    expect(screen.getByText("Grace Hopper (u_grace)")).toBeInTheDocument();
    expect(screen.getByText("2048 MB")).toBeInTheDocument();
    expect(api.calls[0]!.body).toEqual({ id: support.id });
  });

  it("renders a sample in preview mode", () => {
    const api = stubApi({});
    render(<MailboxDetail preview />);
    expect(screen.getByText(support.address)).toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
