import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import type { Suppression } from "@orgmail/client";
import { SuppressionList, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const suppressions = samples.sampleSuppressions;

function statefulApi(initial: Suppression[]) {
  let stored = [...initial];
  return stubApi({
    "suppressions/list": () => ({ body: { suppressions: stored, nextCursor: null } }),
    "suppressions/add": (body) => {
      const added: Suppression = {
        id: "sup_new",
        orgId: "org_1",
        email: String(body["email"]),
        reason: (body["reason"] as Suppression["reason"]) ?? "manual",
        note: (body["note"] as string | undefined) ?? null,
        createdAt: "2026-11-25T10:00:00Z",
      };
      stored = [added, ...stored];
      return { body: { suppression: added } };
    },
    "suppressions/remove": (body) => {
      stored = stored.filter((s) => s.email !== body["email"]);
      return { body: { ok: true } };
    },
  });
}

describe("SuppressionList", () => {
  it("shows a loading state", async () => {
    stubApi({ "suppressions/list": "hang" });
    renderWithProvider(<SuppressionList />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading suppressions…");
  });

  it("shows an empty state", async () => {
    statefulApi([]);
    renderWithProvider(<SuppressionList />);
    expect(await screen.findByText(/No suppressed addresses/)).toBeInTheDocument();
  });

  it("shows an error with code and message", async () => {
    stubApi({ "suppressions/list": { status: 500, body: errorBody("internal_error", "Something went wrong.") } });
    renderWithProvider(<SuppressionList />);
    expect(await screen.findByRole("alert")).toHaveTextContent("internal_error Something went wrong.");
  });

  it("adds with a reason and a note, and removes", async () => {
    const api = statefulApi(suppressions);
    renderWithProvider(<SuppressionList />);
    await screen.findByRole("table");
    await userEvent.type(screen.getByLabelText("Email"), "new@example.org");
    await userEvent.selectOptions(screen.getByLabelText("Reason"), "complaint");
    await userEvent.type(screen.getByLabelText(/Note/), "asked by phone");
    await userEvent.click(screen.getByRole("button", { name: "Add suppression" }));
    expect(await screen.findByRole("status")).toHaveTextContent("new@example.org is suppressed.");
    expect(api.calls.find((c) => c.path === "suppressions/add")!.body).toEqual({
      email: "new@example.org",
      reason: "complaint",
      note: "asked by phone",
    });
    const row = screen.getByText("new@example.org").closest("tr")!;
    expect(within(row).getByText("complaint")).toHaveClass("om-badge");
    expect(row).toHaveTextContent("asked by phone");

    await userEvent.click(screen.getByRole("button", { name: "Remove new@example.org" }));
    await waitFor(() => expect(screen.queryByText("new@example.org", { selector: "td" })).not.toBeInTheDocument());
    expect(screen.getByRole("status")).toHaveTextContent("new@example.org can receive mail again.");
    expect(api.calls.find((c) => c.path === "suppressions/remove")!.body).toEqual({ email: "new@example.org" });
  });

  it("shows a 400 from add with its field", async () => {
    stubApi({
      "suppressions/list": { body: { suppressions: [], nextCursor: null } },
      "suppressions/add": {
        status: 400,
        body: errorBody("invalid_request", "The request is not valid.", { fields: [{ path: "email", message: "not an email address" }] }),
      },
    });
    renderWithProvider(<SuppressionList />);
    await screen.findByText(/No suppressed addresses/);
    await userEvent.type(screen.getByLabelText("Email"), "x@y.z");
    await userEvent.click(screen.getByRole("button", { name: "Add suppression" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("invalid_request");
    expect(alert).toHaveTextContent("email: not an email address");
  });

  it("works in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<SuppressionList preview />);
    await userEvent.click(screen.getByRole("button", { name: `Remove ${suppressions[0]!.email}` }));
    expect(screen.queryByText(suppressions[0]!.email, { selector: "td" })).not.toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
