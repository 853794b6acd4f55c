import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { MessageLog, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const messages = samples.sampleMessages;

describe("MessageLog", () => {
  it("shows a loading state", async () => {
    stubApi({ "messages/list": "hang" });
    renderWithProvider(<MessageLog />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading messages…");
  });

  it("shows an empty state", async () => {
    stubApi({ "messages/list": { body: { messages: [], nextCursor: null } } });
    renderWithProvider(<MessageLog />);
    expect(await screen.findByText("No messages sent yet.")).toBeInTheDocument();
  });

  it("shows a 503 with code and message", async () => {
    stubApi({ "messages/list": { status: 503, body: errorBody("unavailable", "The database cannot be reached; try again shortly.") } });
    renderWithProvider(<MessageLog />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("unavailable");
    expect(alert).toHaveTextContent("The database cannot be reached; try again shortly.");
  });

  it("lists messages in the service's order (newest first) with status badges", async () => {
    stubApi({ "messages/list": { body: { messages, nextCursor: null } } });
    const onSelect = vi.fn();
    renderWithProvider(<MessageLog onSelect={onSelect} />);
    const table = await screen.findByRole("table");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((row) => within(row).getByRole("button").textContent)).toEqual(messages.map((m) => m.subject));
    expect(within(rows[0]!).getByText("sent")).toHaveClass("om-badge--sent");
    expect(within(rows[1]!).getByText("bounced")).toHaveClass("om-badge--bounced");
    await userEvent.click(within(rows[0]!).getByRole("button", { name: messages[0]!.subject }));
    expect(onSelect).toHaveBeenCalledWith(messages[0]);
  });

  it("filters by status on the service and says when nothing matches", async () => {
    const api = stubApi({
      "messages/list": (body) => ({
        body: { messages: messages.filter((m) => !body["status"] || m.status === body["status"]), nextCursor: null },
      }),
    });
    renderWithProvider(<MessageLog />);
    await screen.findByRole("table");
    await userEvent.selectOptions(screen.getByLabelText("Status"), "failed");
    expect(await screen.findByText(messages[3]!.subject)).toBeInTheDocument();
    expect(screen.queryByText(messages[0]!.subject)).not.toBeInTheDocument();
    expect(api.calls.at(-1)!.body).toMatchObject({ status: "failed" });
  });

  it("loads more with the cursor, keeping the order", async () => {
    const api = stubApi({
      "messages/list": (body) =>
        body["cursor"] === "next"
          ? { body: { messages: messages.slice(2), nextCursor: null } }
          : { body: { messages: messages.slice(0, 2), nextCursor: "next" } },
    });
    renderWithProvider(<MessageLog pageSize={2} />);
    await screen.findByRole("table");
    await userEvent.click(screen.getByRole("button", { name: "Load more" }));
    await screen.findByText(messages[4]!.subject);
    const rows = within(screen.getByRole("table")).getAllByRole("row").slice(1);
    expect(rows.map((row) => (row as HTMLTableRowElement).cells[1]!.textContent)).toEqual(messages.map((m) => m.subject));
    expect(api.calls.map((c) => c.body)).toEqual([
      { limit: 2, cursor: null, status: null },
      { limit: 2, cursor: "next", status: null },
    ]);
  });

  it("filters sample rows in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<MessageLog preview />);
    expect(screen.getAllByRole("row")).toHaveLength(messages.length + 1);
    await userEvent.selectOptions(screen.getByLabelText("Status"), "sent");
    expect(screen.getAllByRole("row")).toHaveLength(2);
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
