import { render, renderHook, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it } from "vitest";
import { MailProvider, MessageLog, SuppressionList, useMailClient } from "../src";
import { BASE, stubApi } from "./fakeApi";

describe("MailProvider", () => {
  it("calls {basePath}/v1/mail/… with the current headers, without reloading when they are re-created", async () => {
    const api = stubApi({ "messages/list": { body: { messages: [], nextCursor: null } } });
    function Host() {
      const [key, setKey] = useState("first");
      return (
        <MailProvider basePath={BASE} headers={{ Authorization: `Bearer ${key}` }}>
          <button type="button" onClick={() => setKey("second")}>
            switch key
          </button>
          <MessageLog />
        </MailProvider>
      );
    }
    render(<Host />);
    await screen.findByText("No messages sent yet.");
    await userEvent.click(screen.getByRole("button", { name: "switch key" }));
    expect(api.fetchMock).toHaveBeenCalledTimes(1);
    expect(String(api.fetchMock.mock.calls[0]![0])).toBe(`${BASE}/v1/mail/messages/list`);
    expect(api.calls[0]!.headers.get("Authorization")).toBe("Bearer first");

    await userEvent.click(screen.getByRole("button", { name: "Refresh" }));
    await waitFor(() => expect(api.calls).toHaveLength(2));
    expect(api.calls[1]!.headers.get("Authorization")).toBe("Bearer second");
  });

  it("uses a fetch given to it instead of the global one", async () => {
    const global = stubApi({});
    const seen: string[] = [];
    const own: typeof fetch = async (url) => {
      seen.push(String(url));
      return new Response(JSON.stringify({ suppressions: [], nextCursor: null }), { status: 200 });
    };
    render(
      <MailProvider basePath="/api" fetch={own}>
        <SuppressionList />
      </MailProvider>,
    );
    await screen.findByText(/No suppressed addresses/);
    expect(seen).toEqual(["/api/v1/mail/suppressions/list"]);
    expect(global.fetchMock).not.toHaveBeenCalled();
  });

  it("useMailClient() outside a provider says what is missing", () => {
    expect(() => renderHook(() => useMailClient())).toThrow(/MailProvider/);
  });

  it("a widget outside a provider (and not in preview) shows an error, not a crash", async () => {
    render(<SuppressionList />);
    expect(await screen.findByRole("alert")).toHaveTextContent("No <MailProvider> above this widget.");
  });
});
