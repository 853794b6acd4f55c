import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { Webhook, WebhookDelivery } from "@orgmail/client";
import { WEBHOOK_EVENT_TYPES, WebhookDeliveries, WebhookList, samples } from "../src";
import { errorBody, renderWithProvider, stubApi } from "./fakeApi";

const [bouncesHook, allHook] = samples.sampleWebhooks as [Webhook, Webhook];
const deliveries = samples.sampleWebhookDeliveries[bouncesHook.id]!;
const listOf = (webhooks: Webhook[]) => ({ body: { webhooks, nextCursor: null } });
const deliveriesOf = (items: WebhookDelivery[]) => ({ body: { deliveries: items, nextCursor: null } });
const secret = "whsec_dGVzdC1vbmx5LXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=";
const newHook: Webhook = { ...allHook, id: "whk_new", url: "https://hooks.example.org/in", description: "CRM" };

describe("WebhookList", () => {
  it("shows a loading state", async () => {
    stubApi({ "webhooks/list": "hang" });
    renderWithProvider(<WebhookList />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading webhooks…");
  });

  it("shows an empty state", async () => {
    stubApi({ "webhooks/list": listOf([]) });
    renderWithProvider(<WebhookList />);
    expect(await screen.findByText(/No webhooks yet/)).toBeInTheDocument();
  });

  it("shows a failed load with its code and message, and retries", async () => {
    let fail = true;
    stubApi({
      "webhooks/list": () =>
        fail ? { status: 503, body: errorBody("unavailable", "The database cannot be reached.") } : listOf([bouncesHook]),
    });
    renderWithProvider(<WebhookList />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("unavailable");
    expect(alert).toHaveTextContent("The database cannot be reached.");
    fail = false;
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText(bouncesHook.url)).toBeInTheDocument();
  });

  it("lists url, events, status and created", async () => {
    stubApi({ "webhooks/list": listOf([bouncesHook, { ...allHook, enabled: false }]) });
    renderWithProvider(<WebhookList />);
    const table = await screen.findByRole("table", { name: "Webhooks" });
    const [, first, second] = within(table).getAllByRole("row");
    expect(first).toHaveTextContent(bouncesHook.url);
    expect(first).toHaveTextContent("Bounce and complaint handling");
    expect(first).toHaveTextContent("message.bouncedmessage.complainedsuppression.created");
    expect(within(first!).getByText("enabled")).toHaveClass("om-badge--enabled");
    expect(within(first!).getByRole("time")).toHaveAttribute("dateTime", bouncesHook.createdAt);
    expect(second).toHaveTextContent("All events");
    expect(within(second!).getByText("disabled")).toHaveClass("om-badge--disabled");
    expect(within(second!).getByRole("button", { name: `Send a test event to ${allHook.url}` })).toBeDisabled();
  });

  it("creates with every event by leaving `events` out, shows the secret once with a copy button, then forgets it", async () => {
    let stored: Webhook[] = [];
    const api = stubApi({
      "webhooks/list": () => listOf(stored),
      "webhooks/create": () => {
        stored = [newHook];
        return { body: { webhook: newHook, secret } };
      },
    });
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const onCreated = vi.fn();
    renderWithProvider(<WebhookList onCreated={onCreated} />);
    await screen.findByText(/No webhooks yet/);
    const form = screen.getByRole("form", { name: "Add webhook" });
    const boxes = within(form).getAllByRole("checkbox");
    expect(boxes).toHaveLength(WEBHOOK_EVENT_TYPES.length);
    for (const box of boxes) expect(box).toBeChecked();
    expect(form).toHaveTextContent("every event type, including types added later");

    await userEvent.type(within(form).getByLabelText("Endpoint URL"), newHook.url);
    await userEvent.type(within(form).getByLabelText(/Description/), "CRM");
    await userEvent.click(within(form).getByRole("button", { name: "Add webhook" }));

    const field = await screen.findByLabelText("Signing secret");
    expect(field).toHaveValue(secret);
    expect(field).toHaveAccessibleDescription(/you will not see this secret again/);
    expect(screen.getByRole("region", { name: "New webhook signing secret" })).toHaveTextContent(`Webhook to ${newHook.url} created.`);
    expect(api.calls.find((c) => c.path === "webhooks/create")!.body).toEqual({ url: newHook.url, description: "CRM" });
    expect(onCreated).toHaveBeenCalledWith({ webhook: newHook, secret });
    expect(await screen.findByRole("table", { name: "Webhooks" })).toHaveTextContent(newHook.url);

    await userEvent.click(screen.getByRole("button", { name: "Copy secret" }));
    expect(writeText).toHaveBeenCalledWith(secret);
    expect(await screen.findByRole("button", { name: "Copied" })).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "Done, I saved it" }));
    expect(screen.queryByDisplayValue(secret)).not.toBeInTheDocument();
    expect(document.body).not.toHaveTextContent(secret);
    expect(screen.getByRole("form", { name: "Add webhook" })).toBeInTheDocument();
    // The list reloads from the service, which never answers the secret again.
    await userEvent.click(screen.getAllByRole("button", { name: "Refresh" })[0]!);
    await waitFor(() => expect(api.pathsCalled().filter((p) => p === "webhooks/list").length).toBeGreaterThanOrEqual(3));
    expect(document.body).not.toHaveTextContent(secret);
  });

  it("leaves the secret selected when the browser refuses the clipboard", async () => {
    stubApi({ "webhooks/list": listOf([]), "webhooks/create": { body: { webhook: newHook, secret } } });
    Object.defineProperty(navigator, "clipboard", { value: { writeText: vi.fn(async () => Promise.reject(new Error("denied"))) }, configurable: true });
    renderWithProvider(<WebhookList />);
    await userEvent.type(screen.getByLabelText("Endpoint URL"), newHook.url);
    await userEvent.click(screen.getByRole("button", { name: "Add webhook" }));
    await userEvent.click(await screen.findByRole("button", { name: "Copy secret" }));
    expect(await screen.findByText(/did not allow copying; the signing secret is selected/)).toBeInTheDocument();
  });

  it("sends only the ticked event types, and refuses none", async () => {
    const api = stubApi({ "webhooks/list": listOf([]), "webhooks/create": { body: { webhook: newHook, secret } } });
    renderWithProvider(<WebhookList />);
    const form = screen.getByRole("form", { name: "Add webhook" });
    await userEvent.type(within(form).getByLabelText("Endpoint URL"), newHook.url);
    for (const box of within(form).getAllByRole("checkbox")) await userEvent.click(box);
    await userEvent.click(within(form).getByRole("button", { name: "Add webhook" }));
    expect(await within(form).findByRole("alert")).toHaveTextContent("Choose at least one event type.");
    expect(api.pathsCalled()).not.toContain("webhooks/create");

    await userEvent.click(within(form).getByRole("checkbox", { name: /message\.complained/ }));
    await userEvent.click(within(form).getByRole("checkbox", { name: /message\.bounced/ }));
    expect(form).toHaveTextContent("Only the 2 ticked types.");
    await userEvent.click(within(form).getByRole("button", { name: "Add webhook" }));
    await screen.findByLabelText("Signing secret");
    // In the form's order, whatever order they were ticked in.
    expect(api.calls.find((c) => c.path === "webhooks/create")!.body).toEqual({
      url: newHook.url,
      events: ["message.bounced", "message.complained"],
    });
  });

  it("shows a refused URL with the field that was wrong, and keeps what was typed", async () => {
    stubApi({
      "webhooks/list": listOf([]),
      "webhooks/create": {
        status: 400,
        body: errorBody("invalid_request", "The request is not valid.", {
          fields: [{ path: "url", message: "must not reach a loopback, private or reserved address" }],
        }),
      },
    });
    renderWithProvider(<WebhookList />);
    await userEvent.type(screen.getByLabelText("Endpoint URL"), "http://127.0.0.1:9/hook");
    await userEvent.click(screen.getByRole("button", { name: "Add webhook" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("invalid_request The request is not valid.");
    expect(alert).toHaveTextContent("url: must not reach a loopback, private or reserved address");
    expect(screen.getByLabelText("Endpoint URL")).toHaveValue("http://127.0.0.1:9/hook");
    expect(screen.queryByLabelText("Signing secret")).not.toBeInTheDocument();
  });

  it("sends a test event and shows the deliveries, which a refresh brings up to date", async () => {
    let log: WebhookDelivery[] = [];
    const api = stubApi({
      "webhooks/list": listOf([bouncesHook]),
      "webhooks/test": { body: { ok: true } },
      "webhooks/deliveries": () => deliveriesOf(log),
    });
    renderWithProvider(<WebhookList />);
    await userEvent.click(await screen.findByRole("button", { name: `Send a test event to ${bouncesHook.url}` }));
    expect(await screen.findByRole("status")).toHaveTextContent(`A webhook.test event is on its way to ${bouncesHook.url}`);
    expect(api.calls.find((c) => c.path === "webhooks/test")!.body).toEqual({ id: bouncesHook.id });
    expect(screen.getByRole("button", { name: `Deliveries to ${bouncesHook.url}` })).toHaveAttribute("aria-expanded", "true");

    const panel = screen.getByRole("region", { name: "Recent deliveries" });
    expect(await within(panel).findByText(/No deliveries yet/)).toBeInTheDocument();
    expect(api.calls.find((c) => c.path === "webhooks/deliveries")!.body).toEqual({ webhookId: bouncesHook.id, limit: 20, cursor: null });

    log = deliveries;
    await userEvent.click(within(panel).getByRole("button", { name: "Refresh" }));
    const table = await within(panel).findByRole("table", { name: "Recent deliveries" });
    const [, retried, failed, test] = within(table).getAllByRole("row");
    expect(retried).toHaveTextContent("message.bounced");
    expect(within(retried!).getByText("200")).toHaveClass("om-badge--ok");
    expect(retried).toHaveTextContent("131 ms");
    expect(retried).toHaveTextContent("none: delivered");
    expect(within(failed!).getByText("503")).toHaveClass("om-badge--error");
    expect(failed).toHaveTextContent("answered 503: Service Unavailable");
    expect(within(failed!).getAllByRole("time")[1]).toHaveAttribute("dateTime", deliveries[1]!.nextAttemptAt!);
    expect(test).toHaveTextContent("webhook.test");
    expect(test).toHaveTextContent(deliveries[2]!.eventId);

    await userEvent.click(screen.getByRole("button", { name: `Deliveries to ${bouncesHook.url}` }));
    expect(screen.queryByRole("region", { name: "Recent deliveries" })).not.toBeInTheDocument();
  });

  it("shows a failed test with its code and message", async () => {
    stubApi({ "webhooks/list": listOf([bouncesHook]), "webhooks/test": { status: 404, body: errorBody("not_found", "No such webhook.") } });
    renderWithProvider(<WebhookList />);
    await userEvent.click(await screen.findByRole("button", { name: `Send a test event to ${bouncesHook.url}` }));
    expect(await screen.findByRole("alert")).toHaveTextContent("not_found No such webhook.");
  });

  it("deletes a webhook after confirmation", async () => {
    const api = stubApi({ "webhooks/list": listOf([bouncesHook, allHook]), "webhooks/delete": { body: { ok: true } } });
    const onDeleted = vi.fn();
    renderWithProvider(<WebhookList onDeleted={onDeleted} />);
    await userEvent.click(await screen.findByRole("button", { name: `Delete the webhook to ${bouncesHook.url}` }));
    expect(api.pathsCalled()).not.toContain("webhooks/delete");
    await userEvent.click(screen.getByRole("button", { name: "Delete webhook" }));
    expect(await screen.findByRole("status")).toHaveTextContent(`The webhook to ${bouncesHook.url} is deleted`);
    expect(api.calls.find((c) => c.path === "webhooks/delete")!.body).toEqual({ id: bouncesHook.id });
    expect(onDeleted).toHaveBeenCalledWith(bouncesHook);
  });

  it("works in preview mode with no calls", async () => {
    const api = stubApi({});
    render(<WebhookList preview />);
    expect(screen.getByRole("table", { name: "Webhooks" })).toHaveTextContent(bouncesHook.url);
    await userEvent.click(screen.getByRole("button", { name: `Deliveries to ${bouncesHook.url}` }));
    expect(screen.getByRole("table", { name: "Recent deliveries" })).toHaveTextContent("answered 503: Service Unavailable");
    await userEvent.type(screen.getByLabelText("Endpoint URL"), "https://preview.example.com/hook");
    await userEvent.click(screen.getByRole("button", { name: "Add webhook" }));
    expect(await screen.findByLabelText("Signing secret")).toHaveValue(samples.sampleWebhookSecret);
    expect(api.fetchMock).not.toHaveBeenCalled();
  });
});

describe("WebhookDeliveries", () => {
  it("asks for a webhook when given none, without a call", () => {
    const api = stubApi({});
    renderWithProvider(<WebhookDeliveries />);
    expect(screen.getByText("Select a webhook to see its deliveries.")).toBeInTheDocument();
    expect(api.fetchMock).not.toHaveBeenCalled();
  });

  it("shows loading, then a failure with its code and message", async () => {
    stubApi({ "webhooks/deliveries": "hang" });
    renderWithProvider(<WebhookDeliveries webhookId={bouncesHook.id} />);
    expect(await screen.findByRole("status")).toHaveTextContent("Loading deliveries…");

    stubApi({ "webhooks/deliveries": { status: 404, body: errorBody("not_found", "No such webhook.") } });
    renderWithProvider(<WebhookDeliveries webhookId="whk_gone" title="Gone" />);
    const region = screen.getByRole("region", { name: "Gone" });
    expect(await within(region).findByRole("alert")).toHaveTextContent("not_found No such webhook.");
  });

  it("renders a sample in preview mode", () => {
    stubApi({});
    render(<WebhookDeliveries preview webhookId={bouncesHook.id} />);
    expect(screen.getByRole("region", { name: /^Webhook deliveries/ })).toHaveTextContent("message.bounced");
  });
});
