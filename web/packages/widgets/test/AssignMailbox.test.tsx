import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { AssignMailbox, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const members = samples.sampleMembers;
const billing = samples.sampleMailboxes[1]!;

describe("AssignMailbox", () => {
  it("asks for a selection when given no mailbox", () => {
    stubApi({});
    renderWithProvider(<AssignMailbox members={members} />);
    expect(screen.getByText("Select a mailbox to assign it.")).toBeInTheDocument();
  });

  it("loads the mailbox by id", async () => {
    stubApi({ "mailboxes/get": "hang" });
    renderWithProvider(<AssignMailbox members={members} mailboxId={billing.id} />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading mailbox…");
  });

  it("says so when there are no members", async () => {
    stubApi({ "mailboxes/get": { body: { mailbox: billing } } });
    renderWithProvider(<AssignMailbox members={[]} mailboxId={billing.id} />);
    expect(await screen.findByText(/No members in this organization yet/)).toBeInTheDocument();
  });

  it("shows a failed load", async () => {
    stubApi({ "mailboxes/get": { status: 403, body: errorBody("forbidden_org", "This API key cannot act on that organization.") } });
    renderWithProvider(<AssignMailbox members={members} mailboxId={billing.id} />);
    expect(await screen.findByRole("alert")).toHaveTextContent("forbidden_org This API key cannot act on that organization.");
  });

  it("assigns to the chosen member, by keyboard", async () => {
    let stored = billing;
    const api = stubApi({
      "mailboxes/get": () => ({ body: { mailbox: stored } }),
      "mailboxes/assign": (body) => {
        stored = { ...billing, assignedUserId: body["assignedUserId"] as string | null };
        return { body: { mailbox: stored } };
      },
    });
    const onAssigned = vi.fn();
    renderWithProvider(<AssignMailbox members={members} mailboxId={billing.id} onAssigned={onAssigned} />);
    const select = await screen.findByLabelText(`Assign ${billing.address} to`);
    expect(select).toHaveValue("");
    expect(screen.getByRole("button", { name: "Save" })).toBeDisabled();
    await userEvent.selectOptions(select, "u_grace");
    select.focus();
    await userEvent.tab();
    expect(screen.getByRole("button", { name: "Save" })).toHaveFocus();
    await userEvent.keyboard("{Enter}");
    expect(await screen.findByRole("status")).toHaveTextContent(`${billing.address} is now assigned to Grace Hopper (u_grace).`);
    expect(api.calls.find((c) => c.path === "mailboxes/assign")!.body).toEqual({ id: billing.id, assignedUserId: "u_grace" });
    expect(onAssigned).toHaveBeenCalledWith(expect.objectContaining({ assignedUserId: "u_grace" }));
  });

  it("shows member_not_found from the service", async () => {
    stubApi({ "mailboxes/assign": { status: 404, body: errorBody("member_not_found", "That user is not a member of the organization.") } });
    renderWithProvider(<AssignMailbox members={members} mailbox={billing} />);
    await userEvent.selectOptions(screen.getByLabelText(`Assign ${billing.address} to`), "u_alan");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("member_not_found");
  });

  it("works in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<AssignMailbox preview members={members} />);
    await userEvent.selectOptions(screen.getByRole("combobox"), "");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByRole("status")).toHaveTextContent("is now unassigned");
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});
