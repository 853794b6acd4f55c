import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { MessageDetail, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const bounced = samples.sampleMessages[1]!;

describe("MessageDetail", () => {
  it("asks for a selection when given no id", () => {
    stubApi({});
    renderWithProvider(<MessageDetail />);
    expect(screen.getByText(/Select a message/)).toBeInTheDocument();
  });

  it("shows a loading state", async () => {
    stubApi({ "messages/get": "hang" });
    renderWithProvider(<MessageDetail id={bounced.id} />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading message…");
  });

  it("shows a 404", async () => {
    stubApi({ "messages/get": { status: 404, body: errorBody("not_found", "No such resource.") } });
    renderWithProvider(<MessageDetail id="msg_missing" />);
    expect(await screen.findByRole("alert")).toHaveTextContent("not_found No such resource.");
  });

  it("shows the message, its error and the refused recipients", async () => {
    const api = stubApi({ "messages/get": { body: { message: bounced } } });
    renderWithProvider(<MessageDetail id={bounced.id} />);
    expect(await screen.findByText(bounced.subject)).toBeInTheDocument();
    expect(screen.getByText("bounced")).toHaveClass("om-badge");
    expect(screen.getByText("relay_rejected")).toBeInTheDocument();
    expect(screen.getByRole("table", { name: "Refused by the relay" })).toHaveTextContent("nobody@example.net550");
    expect(screen.getByText(bounced.messageId)).toBeInTheDocument();
    expect(api.calls[0]!.body).toEqual({ id: bounced.id });
  });

  it("renders a sample in preview mode", () => {
    const api = stubApi({});
    render(<MessageDetail preview />);
    expect(screen.getByText(bounced.subject)).toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
