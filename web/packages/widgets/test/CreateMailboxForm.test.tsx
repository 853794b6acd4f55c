import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { CreateMailboxForm, MailboxList, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const created = { mailbox: { ...samples.sampleMailboxes[1]!, address: "new@example.com" }, password: "Zr8-one-time-secret" };
const members = samples.sampleMembers;

describe("CreateMailboxForm", () => {
  it("shows a loading state on the button while creating", async () => {
    stubApi({ "mailboxes/create": "hang" });
    renderWithProvider(<CreateMailboxForm members={members} />);
    await userEvent.type(screen.getByLabelText("Address"), "new@example.com");
    await userEvent.click(screen.getByRole("button", { name: "Create mailbox" }));
    expect(await screen.findByRole("button", { name: "Creating…" })).toBeDisabled();
  });

  it("offers the members to assign, or a user id field when there are none loaded", async () => {
    stubApi({ "members/list": { status: 503, body: errorBody("unavailable", "down") } });
    renderWithProvider(<CreateMailboxForm />);
    expect(await screen.findByPlaceholderText("member user id")).toBeInTheDocument();
    render(<CreateMailboxForm members={[]} />);
    expect(screen.getAllByLabelText(/Assign to/)[1]).toHaveRole("combobox");
  });

  it("shows the password once, with a copy button and the warning, then forgets it", async () => {
    const api = stubApi({
      "mailboxes/create": { body: created },
      "mailboxes/list": { body: { mailboxes: [], nextCursor: null } },
    });
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const onCreated = vi.fn();
    renderWithProvider(<CreateMailboxForm members={members} onCreated={onCreated} />);
    await userEvent.type(screen.getByLabelText("Address"), "new@example.com");
    await userEvent.type(screen.getByLabelText(/Display name/), "New");
    await userEvent.selectOptions(screen.getByLabelText(/Assign to/), "u_grace");
    await userEvent.type(screen.getByLabelText(/Quota/), "512");
    await userEvent.click(screen.getByRole("button", { name: "Create mailbox" }));

    const password = await screen.findByLabelText("Password");
    expect(password).toHaveValue(created.password);
    expect(password).toHaveAccessibleDescription(/you will not see this password again/);
    expect(screen.getByRole("status")).toHaveTextContent("Mailbox new@example.com created.");
    expect(api.calls.find((c) => c.path === "mailboxes/create")!.body).toEqual({
      address: "new@example.com",
      displayName: "New",
      assignedUserId: "u_grace",
      quotaMb: 512,
    });
    expect(onCreated).toHaveBeenCalledWith(created);

    await userEvent.click(screen.getByRole("button", { name: "Copy password" }));
    expect(writeText).toHaveBeenCalledWith(created.password);
    expect(await screen.findByRole("button", { name: "Copied" })).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "Done, I saved it" }));
    expect(screen.queryByDisplayValue(created.password)).not.toBeInTheDocument();
    expect(screen.getByLabelText("Address")).toHaveValue("");
  });

  it("tells the list to reload after creating", async () => {
    let stored: (typeof created.mailbox)[] = [];
    stubApi({
      "mailboxes/create": () => {
        stored = [created.mailbox];
        return { body: created };
      },
      "mailboxes/list": () => ({ body: { mailboxes: stored, nextCursor: null } }),
    });
    renderWithProvider(
      <>
        <CreateMailboxForm members={members} />
        <MailboxList members={members} />
      </>,
    );
    expect(await screen.findByText(/No mailboxes yet/)).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText("Address"), "new@example.com");
    await userEvent.click(screen.getByRole("button", { name: "Create mailbox" }));
    await waitFor(() => expect(screen.getByRole("table")).toHaveTextContent("new@example.com"));
  });

  it("shows 409 mailbox_taken with its message and keeps what was typed", async () => {
    stubApi({ "mailboxes/create": { status: 409, body: errorBody("mailbox_taken", "A mailbox with that address already exists.") } });
    renderWithProvider(<CreateMailboxForm members={members} />);
    await userEvent.type(screen.getByLabelText("Address"), "taken@example.com");
    await userEvent.click(screen.getByRole("button", { name: "Create mailbox" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("mailbox_taken");
    expect(alert).toHaveTextContent("A mailbox with that address already exists.");
    expect(screen.getByLabelText("Address")).toHaveValue("taken@example.com");
    expect(screen.queryByLabelText("Password")).not.toBeInTheDocument();
  });

  it("lists invalid fields from a 400", async () => {
    stubApi({
      "mailboxes/create": {
        status: 400,
        body: errorBody("invalid_request", "The request is not valid.", { fields: [{ path: "quotaMb", message: "must be at least 1" }] }),
      },
    });
    renderWithProvider(<CreateMailboxForm members={members} />);
    await userEvent.type(screen.getByLabelText("Address"), "x@example.com");
    await userEvent.click(screen.getByRole("button", { name: "Create mailbox" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("quotaMb: must be at least 1");
  });

  it("works in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<CreateMailboxForm preview />);
    await userEvent.type(screen.getByLabelText("Address"), "demo@example.com");
    await userEvent.click(screen.getByRole("button", { name: "Create mailbox" }));
    expect(await screen.findByLabelText("Password")).toHaveValue(samples.samplePassword);
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
