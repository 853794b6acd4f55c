import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { SendMailForm, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const sent = samples.sampleMessages[0]!;

async function fill(from = "Example <hello@example.com>") {
  const from_ = screen.getByLabelText("From");
  await userEvent.clear(from_);
  await userEvent.type(from_, from);
  await userEvent.type(screen.getByLabelText("To"), "a@example.org, b@example.org");
  await userEvent.type(screen.getByLabelText("Subject"), "Hello");
  await userEvent.type(screen.getByLabelText("Text"), "Hi there");
}

describe("SendMailForm", () => {
  it("shows the pending state while sending", async () => {
    stubApi({ "messages/send": "hang" });
    renderWithProvider(<SendMailForm />);
    await fill();
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    expect(await screen.findByRole("button", { name: "Sending…" })).toBeDisabled();
  });

  it("requires a body before calling the service", async () => {
    const api = stubApi({});
    renderWithProvider(<SendMailForm defaultFrom="hello@example.com" />);
    await userEvent.type(screen.getByLabelText("To"), "a@example.org");
    await userEvent.type(screen.getByLabelText("Subject"), "Hello");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Write a text or an HTML body.");
    expect(api.fetchMock).not.toHaveBeenCalled();
  });

  it("sends and shows the send-log status", async () => {
    const api = stubApi({ "messages/send": { body: { message: { ...sent, to: ["a@example.org", "b@example.org"] } } } });
    const onSent = vi.fn();
    renderWithProvider(<SendMailForm onSent={onSent} />);
    await fill();
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    const status = await screen.findByRole("status");
    expect(status).toHaveTextContent("Message to a@example.org, b@example.org is sent");
    const body = api.calls[0]!.body;
    expect(body).toMatchObject({ from: "Example <hello@example.com>", to: ["a@example.org", "b@example.org"], subject: "Hello", text: "Hi there" });
    expect(typeof body["idempotencyKey"]).toBe("string");
    expect(onSent).toHaveBeenCalled();
    expect(screen.getByLabelText("Subject")).toHaveValue("");
    expect(screen.getByLabelText("From")).toHaveValue("Example <hello@example.com>");
  });

  it("shows 422 all_recipients_suppressed, and a resubmit reuses the idempotency key", async () => {
    const api = stubApi({
      "messages/send": { status: 422, body: errorBody("all_recipients_suppressed", "Every recipient is on the suppression list.") },
    });
    renderWithProvider(<SendMailForm />);
    await fill();
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("all_recipients_suppressed");
    expect(alert).toHaveTextContent("Every recipient is on the suppression list.");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    await screen.findByRole("alert");
    expect(api.calls).toHaveLength(2);
    expect(api.calls[1]!.body["idempotencyKey"]).toBe(api.calls[0]!.body["idempotencyKey"]);
    await userEvent.type(screen.getByLabelText("Subject"), "!");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    await screen.findByRole("alert");
    expect(api.calls[2]!.body["idempotencyKey"]).not.toBe(api.calls[0]!.body["idempotencyKey"]);
  });

  it("sends a single recipient as a string and cc as a list", async () => {
    const api = stubApi({ "messages/send": { body: { message: sent } } });
    renderWithProvider(<SendMailForm defaultFrom="hello@example.com" />);
    await userEvent.type(screen.getByLabelText("To"), "only@example.org");
    await userEvent.click(screen.getByText("Cc and Bcc"));
    await userEvent.type(screen.getByLabelText("Cc"), "c@example.org");
    await userEvent.type(screen.getByLabelText("Subject"), "Hi");
    await userEvent.click(screen.getByText("HTML body"));
    await userEvent.type(screen.getByLabelText("HTML"), "<p>Hi</p>");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    await screen.findByRole("status");
    expect(api.calls[0]!.body).toMatchObject({ to: "only@example.org", cc: ["c@example.org"], html: "<p>Hi</p>" });
    expect(api.calls[0]!.body).not.toHaveProperty("text");
  });

  it("works in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<SendMailForm preview defaultFrom="hello@example.com" />);
    await fill("hello@example.com");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    expect(await screen.findByRole("status")).toHaveTextContent("is sent");
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
