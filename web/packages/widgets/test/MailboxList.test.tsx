import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { MailboxList, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const [support, billing] = samples.sampleMailboxes;
const members = samples.sampleMembers;

describe("MailboxList", () => {
  it("shows a loading state while the list is on its way", async () => {
    stubApi({ "mailboxes/list": "hang", "members/list": "hang" });
    renderWithProvider(<MailboxList />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading mailboxes…");
  });

  it("shows an empty state", async () => {
    stubApi({ "mailboxes/list": { body: { mailboxes: [], nextCursor: null } }, "members/list": { body: { members: [], nextCursor: null } } });
    renderWithProvider(<MailboxList />);
    expect(await screen.findByText(/No mailboxes yet/)).toBeInTheDocument();
  });

  it("shows the error code and message, and retries", async () => {
    let fail = true;
    const api = stubApi({
      "mailboxes/list": () =>
        fail ? { status: 401, body: errorBody("unauthorized", "A valid API key is required.") } : { body: { mailboxes: [support], nextCursor: null } },
      "members/list": { body: { members, nextCursor: null } },
    });
    renderWithProvider(<MailboxList />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("unauthorized");
    expect(alert).toHaveTextContent("A valid API key is required.");
    fail = false;
    await userEvent.click(within(alert).getByRole("button", { name: "Try again" }));
    expect(await screen.findByText(support!.address)).toBeInTheDocument();
    expect(api.calls[0]!.headers.get("Authorization")).toBe("Bearer omk_01JCTESTKEY_test-secret");
  });

  it("lists mailboxes with their assignee by name, and loads more with the cursor", async () => {
    const api = stubApi({
      "mailboxes/list": (body) =>
        body["cursor"] ? { body: { mailboxes: [billing], nextCursor: null } } : { body: { mailboxes: [support], nextCursor: "c1" } },
      "members/list": { body: { members, nextCursor: null } },
    });
    renderWithProvider(<MailboxList />);
    const row = (await screen.findByText(support!.address)).closest("tr")!;
    expect(row).toHaveTextContent("Grace Hopper (u_grace)");
    await userEvent.click(screen.getByRole("button", { name: "Load more" }));
    expect(await screen.findByText(billing!.address)).toBeInTheDocument();
    expect(api.calls.filter((c) => c.path === "mailboxes/list").map((c) => c.body["cursor"])).toEqual([null, "c1"]);
    expect(screen.queryByRole("button", { name: "Load more" })).not.toBeInTheDocument();
  });

  it("deletes only after confirmation, and Cancel or Escape keeps the mailbox", async () => {
    // The stub keeps server state: the reload that follows a delete must not bring the row back.
    let stored = [support!, billing!];
    const api = stubApi({
      "mailboxes/list": () => ({ body: { mailboxes: stored, nextCursor: null } }),
      "members/list": { body: { members, nextCursor: null } },
      "mailboxes/delete": (body) => {
        stored = stored.filter((m) => m.id !== body["id"]);
        return { body: { ok: true } };
      },
    });
    renderWithProvider(<MailboxList />);
    await userEvent.click(await screen.findByRole("button", { name: `Delete ${support!.address}` }));
    expect(screen.getByRole("group", { name: `Delete ${support!.address} and all its mail?` })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Cancel" })).toHaveFocus();
    await userEvent.keyboard("{Escape}");
    expect(screen.getByRole("button", { name: `Delete ${support!.address}` })).toHaveFocus();
    expect(api.pathsCalled()).not.toContain("mailboxes/delete");

    await userEvent.click(screen.getByRole("button", { name: `Delete ${support!.address}` }));
    await userEvent.click(screen.getByRole("button", { name: "Delete mailbox" }));
    await waitFor(() => expect(screen.queryByText(support!.address)).not.toBeInTheDocument());
    expect(api.calls.find((c) => c.path === "mailboxes/delete")!.body).toEqual({ id: support!.id });
  });

  it("assigns through the inline form and unassigns", async () => {
    let stored = billing!;
    const api = stubApi({
      "mailboxes/list": () => ({ body: { mailboxes: [stored], nextCursor: null } }),
      "members/list": { body: { members, nextCursor: null } },
      "mailboxes/assign": (body) => {
        stored = { ...stored, assignedUserId: body["assignedUserId"] as string | null };
        return { body: { mailbox: stored } };
      },
    });
    renderWithProvider(<MailboxList />);
    await userEvent.click(await screen.findByRole("button", { name: `Assign ${billing!.address}` }));
    await userEvent.selectOptions(screen.getByLabelText(`Assign ${billing!.address} to`), "u_ada");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByText(`${billing!.address} is now assigned to Ada Lovelace (u_ada).`)).toBeInTheDocument();
    expect(api.calls.find((c) => c.path === "mailboxes/assign")!.body).toEqual({ id: billing!.id, assignedUserId: "u_ada" });

    api.calls.length = 0;
    await userEvent.click(screen.getByRole("button", { name: `Unassign ${billing!.address}` }));
    await waitFor(() => expect(api.calls.find((c) => c.path === "mailboxes/assign")?.body).toEqual({ id: billing!.id, assignedUserId: null }));
  });

  it("shows a failed action's error (member_not_found) above the table", async () => {
    stubApi({
      "mailboxes/list": { body: { mailboxes: [support], nextCursor: null } },
      "members/list": { body: { members, nextCursor: null } },
      "mailboxes/assign": { status: 404, body: errorBody("member_not_found", "That user is not a member of the organization.") },
    });
    renderWithProvider(<MailboxList />);
    await userEvent.click(await screen.findByRole("button", { name: `Unassign ${support!.address}` }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("member_not_found");
    expect(alert).toHaveTextContent("That user is not a member of the organization.");
  });

  it("renders sample data in preview mode without a provider or any call", async () => {
    const api = stubApi({});
    const { render } = await import("@testing-library/react");
    render(<MailboxList preview />);
    expect(screen.getByText(support!.address)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: `Delete ${support!.address}` }));
    await userEvent.click(screen.getByRole("button", { name: "Delete mailbox" }));
    expect(screen.queryByText(support!.address)).not.toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
