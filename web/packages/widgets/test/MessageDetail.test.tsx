import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { MessageDetail, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const bounced = samples.sampleMessages[1]!;
const receipt = samples.sampleMessages[0]!;
const receiptEvents = samples.sampleMessageEvents[receipt.id]!;
const noEvents = { body: { events: [] } };

describe("MessageDetail", () => {
  it("asks for a selection when given no id", () => {
    stubApi({});
    renderWithProvider(<MessageDetail />);
    expect(screen.getByText(/Select a message/)).toBeInTheDocument();
  });

  it("shows a loading state", async () => {
    stubApi({ "messages/get": "hang", "messages/events": noEvents });
    renderWithProvider(<MessageDetail id={bounced.id} />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading message…");
  });

  it("shows a 404", async () => {
    stubApi({
      "messages/get": { status: 404, body: errorBody("not_found", "No such resource.") },
      "messages/events": { status: 404, body: errorBody("not_found", "No such resource.") },
    });
    renderWithProvider(<MessageDetail id="msg_missing" />);
    const alerts = await screen.findAllByRole("alert");
    expect(alerts[0]).toHaveTextContent("not_found No such resource.");
  });

  it("shows the message, its error and the refused recipients", async () => {
    const api = stubApi({ "messages/get": { body: { message: bounced } }, "messages/events": noEvents });
    renderWithProvider(<MessageDetail id={bounced.id} />);
    expect(await screen.findByText(bounced.subject)).toBeInTheDocument();
    expect(screen.getByText("bounced")).toHaveClass("om-badge");
    expect(screen.getByText("relay_rejected")).toBeInTheDocument();
    expect(screen.getByRole("table", { name: "Refused by the relay" })).toHaveTextContent("nobody@example.net550");
    expect(screen.getByText(bounced.messageId)).toBeInTheDocument();
    expect(api.calls.find((c) => c.path === "messages/get")!.body).toEqual({ id: bounced.id });
  });

  it("shows the timeline oldest first: badge, recipient, SMTP status, diagnostic, time", async () => {
    const api = stubApi({ "messages/get": { body: { message: receipt } }, "messages/events": { body: { events: receiptEvents } } });
    renderWithProvider(<MessageDetail id={receipt.id} />);
    const timeline = await screen.findByRole("table", { name: "Timeline" });
    const rows = within(timeline).getAllByRole("row").slice(1);
    expect(rows.map((row) => within(row).getAllByRole("cell")[1]!.textContent)).toEqual(["sent", "deferred", "delivered"]);
    expect(within(rows[0]!).getByText("sent")).toHaveClass("om-badge", "om-badge--sent");
    expect(rows[0]).toHaveTextContent("whole message");
    expect(rows[1]).toHaveTextContent("customer@example.org");
    expect(rows[1]).toHaveTextContent("4.2.2");
    expect(rows[1]).toHaveTextContent("452 4.2.2 Mailbox full, try again later");
    expect(within(rows[2]!).getByRole("time")).toHaveAttribute("dateTime", "2026-11-24T17:10:03Z");
    expect(api.calls.find((c) => c.path === "messages/events")!.body).toEqual({ id: receipt.id });
  });

  it("refreshes the timeline: a report's event shows up", async () => {
    let events = receiptEvents.slice(0, 1);
    stubApi({ "messages/get": { body: { message: receipt } }, "messages/events": () => ({ body: { events } }) });
    renderWithProvider(<MessageDetail id={receipt.id} />);
    const timeline = await screen.findByRole("table", { name: "Timeline" });
    expect(within(timeline).getAllByRole("row")).toHaveLength(2);
    events = receiptEvents;
    await userEvent.click(screen.getByRole("button", { name: "Refresh" }));
    expect(await within(timeline).findByText("delivered")).toBeInTheDocument();
    expect(within(timeline).getAllByRole("row")).toHaveLength(4);
  });

  it("shows a hard bounce's type and status", async () => {
    const events = samples.sampleMessageEvents[bounced.id]!;
    stubApi({ "messages/get": { body: { message: bounced } }, "messages/events": { body: { events } } });
    renderWithProvider(<MessageDetail id={bounced.id} />);
    const row = within(await screen.findByRole("table", { name: "Timeline" })).getAllByRole("row")[1]!;
    expect(within(row).getByText("bounced")).toHaveClass("om-badge--bounced");
    expect(within(row).getByText("hard")).toHaveClass("om-badge--bounce-hard");
    expect(row).toHaveTextContent("nobody@example.net");
    expect(row).toHaveTextContent("5.1.1");
  });

  it("shows the timeline loading, then empty for a message with no events yet", async () => {
    const queued = samples.sampleMessages[4]!;
    stubApi({ "messages/get": { body: { message: queued } }, "messages/events": "hang" });
    renderWithProvider(<MessageDetail id={queued.id} />);
    expect(await screen.findByText("Loading timeline…")).toBeInTheDocument();

    stubApi({ "messages/get": { body: { message: queued } }, "messages/events": noEvents });
    renderWithProvider(<MessageDetail id={queued.id} title="Another" />);
    const region = screen.getByRole("region", { name: "Another" });
    expect(await within(region).findByText(/No events yet/)).toBeInTheDocument();
    expect(within(region).queryByRole("table", { name: "Timeline" })).not.toBeInTheDocument();
  });

  it("shows a timeline that cannot load with its code and message, keeps the message, and retries", async () => {
    let fail = true;
    stubApi({
      "messages/get": { body: { message: receipt } },
      "messages/events": () =>
        fail ? { status: 503, body: errorBody("unavailable", "The database cannot be reached.") } : { body: { events: receiptEvents } },
    });
    renderWithProvider(<MessageDetail id={receipt.id} />);
    const timeline = screen.getByRole("region", { name: "Timeline" });
    expect(await within(timeline).findByRole("alert")).toHaveTextContent("unavailable The database cannot be reached.");
    expect(await screen.findByText(receipt.subject)).toBeInTheDocument();
    fail = false;
    await userEvent.click(within(timeline).getByRole("button", { name: "Try again" }));
    expect(await within(timeline).findByText("delivered")).toBeInTheDocument();
  });

  it("renders a sample in preview mode", () => {
    const api = stubApi({});
    render(<MessageDetail preview />);
    expect(screen.getByText(bounced.subject)).toBeInTheDocument();
    expect(screen.getByRole("table", { name: "Timeline" })).toHaveTextContent("5.1.1");
    expect(api.fetchMock).not.toHaveBeenCalled();
  });

  it("picks a sample message by id in preview mode", () => {
    stubApi({});
    render(<MessageDetail preview id={receipt.id} />);
    expect(screen.getByText(receipt.subject)).toBeInTheDocument();
    expect(within(screen.getByRole("table", { name: "Timeline" })).getAllByRole("row")).toHaveLength(4);
  });
});
