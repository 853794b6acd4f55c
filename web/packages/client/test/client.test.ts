import { afterEach, describe, expect, it, vi } from "vitest";
import { OrgmailError, createClient } from "../src";

type Recorded = { url: string; init: RequestInit };

function fakeFetch(status: number, body: unknown, headers: Record<string, string> = {}) {
  const calls: Recorded[] = [];
  const fetchImpl = vi.fn(async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    return new Response(body === undefined ? "" : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json", ...headers },
    });
  });
  return { fetchImpl: fetchImpl as unknown as typeof fetch, calls };
}

afterEach(() => vi.unstubAllGlobals());

describe("createClient", () => {
  it("posts every call as JSON to {basePath}/v1/mail/<resource>/<verb>", async () => {
    const { fetchImpl, calls } = fakeFetch(200, { ok: true });
    const client = createClient({ basePath: "https://mail.example.com/", fetch: fetchImpl });
    const verbs: [string, (c: typeof client) => Promise<unknown>][] = [
      ["mailboxes/create", (c) => c.mail.mailboxes.create({ address: "a@example.com" })],
      ["mailboxes/get", (c) => c.mail.mailboxes.get({ id: "mbx_1" })],
      ["mailboxes/list", (c) => c.mail.mailboxes.list()],
      ["mailboxes/assign", (c) => c.mail.mailboxes.assign({ id: "mbx_1", assignedUserId: null })],
      ["mailboxes/delete", (c) => c.mail.mailboxes.delete({ id: "mbx_1" })],
      ["messages/send", (c) => c.mail.messages.send({ from: "a@example.com", to: "b@example.org", subject: "hi", text: "x" })],
      ["messages/get", (c) => c.mail.messages.get({ id: "msg_1" })],
      ["messages/list", (c) => c.mail.messages.list({ status: "sent" })],
      ["messages/events", (c) => c.mail.messages.events({ id: "msg_1" })],
      ["suppressions/add", (c) => c.mail.suppressions.add({ email: "b@example.org", reason: "complaint" })],
      ["suppressions/list", (c) => c.mail.suppressions.list()],
      ["suppressions/remove", (c) => c.mail.suppressions.remove({ email: "b@example.org" })],
      ["members/add", (c) => c.mail.members.add({ userId: "u1" })],
      ["members/list", (c) => c.mail.members.list()],
      ["members/remove", (c) => c.mail.members.remove({ userId: "u1" })],
      ["domains/add", (c) => c.mail.domains.add({ name: "example.com" })],
      ["domains/get", (c) => c.mail.domains.get({ id: "dom_1" })],
      ["domains/list", (c) => c.mail.domains.list()],
      ["domains/verify", (c) => c.mail.domains.verify({ id: "dom_1" })],
      ["domains/delete", (c) => c.mail.domains.delete({ id: "dom_1" })],
      ["webhooks/create", (c) => c.mail.webhooks.create({ url: "https://hooks.example.com/orgmail", events: ["message.bounced"] })],
      ["webhooks/get", (c) => c.mail.webhooks.get({ id: "whk_1" })],
      ["webhooks/list", (c) => c.mail.webhooks.list()],
      ["webhooks/delete", (c) => c.mail.webhooks.delete({ id: "whk_1" })],
      ["webhooks/test", (c) => c.mail.webhooks.test({ id: "whk_1" })],
      ["webhooks/deliveries", (c) => c.mail.webhooks.deliveries({ webhookId: "whk_1", limit: 20 })],
    ];
    for (const [, run] of verbs) await run(client);
    expect(calls.map((c) => c.url)).toEqual(verbs.map(([path]) => `https://mail.example.com/v1/mail/${path}`));
    for (const call of calls) {
      expect(call.init.method).toBe("POST");
      expect(new Headers(call.init.headers).get("Content-Type")).toBe("application/json");
      expect(typeof JSON.parse(String(call.init.body))).toBe("object");
    }
    expect(JSON.parse(String(calls[2]!.init.body))).toEqual({});
    expect(JSON.parse(String(calls[3]!.init.body))).toEqual({ id: "mbx_1", assignedUserId: null });
  });

  it("returns the parsed answer", async () => {
    const mailbox = { id: "mbx_1", address: "a@example.com" };
    const { fetchImpl } = fakeFetch(200, { mailbox, password: "s3cret" });
    const client = createClient({ basePath: "", fetch: fetchImpl });
    const created = await client.mail.mailboxes.create({ address: "a@example.com" });
    expect(created.password).toBe("s3cret");
    expect(created.mailbox.id).toBe("mbx_1");
  });

  it("sends static headers, header functions and per-call headers", async () => {
    const { fetchImpl, calls } = fakeFetch(200, { ok: true });
    let key = "first";
    const client = createClient({ basePath: "", fetch: fetchImpl, headers: () => ({ Authorization: `Bearer ${key}` }) });
    await client.mail.suppressions.list();
    key = "second";
    await client.mail.suppressions.list({}, { headers: { "Idempotency-Key": "k1" } });
    expect(new Headers(calls[0]!.init.headers).get("Authorization")).toBe("Bearer first");
    expect(new Headers(calls[1]!.init.headers).get("Authorization")).toBe("Bearer second");
    expect(new Headers(calls[1]!.init.headers).get("Idempotency-Key")).toBe("k1");
  });

  it("uses the global fetch, looked up at call time", async () => {
    const client = createClient({ basePath: "" });
    const { fetchImpl, calls } = fakeFetch(200, { suppressions: [], nextCursor: null });
    vi.stubGlobal("fetch", fetchImpl);
    await client.mail.suppressions.list();
    expect(calls).toHaveLength(1);
  });

  it("turns the error body into an OrgmailError with status, code, message and details", async () => {
    const body = { error: { code: "mailbox_taken", message: "A mailbox with that address already exists.", details: { address: "a@example.com" } } };
    const { fetchImpl } = fakeFetch(409, body);
    const client = createClient({ basePath: "", fetch: fetchImpl });
    const error = await client.mail.mailboxes.create({ address: "a@example.com" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrgmailError);
    expect(error).toMatchObject({ status: 409, code: "mailbox_taken", message: body.error.message, details: { address: "a@example.com" } });
  });

  it("reads Retry-After on 503", async () => {
    const { fetchImpl } = fakeFetch(503, { error: { code: "unavailable", message: "down" } }, { "Retry-After": "5" });
    const client = createClient({ basePath: "", fetch: fetchImpl });
    await expect(client.mail.mailboxes.list()).rejects.toMatchObject({ code: "unavailable", status: 503, retryAfter: 5 });
  });

  it("reports an answer without an error body as invalid_response", async () => {
    const fetchImpl = (async () => new Response("<html>bad gateway</html>", { status: 502 })) as typeof fetch;
    const client = createClient({ basePath: "", fetch: fetchImpl });
    await expect(client.mail.mailboxes.list()).rejects.toMatchObject({ status: 502, code: "invalid_response" });
  });

  it("reports an unreachable service as network_error with status 0", async () => {
    const fetchImpl = (async () => {
      throw new TypeError("fetch failed");
    }) as typeof fetch;
    const client = createClient({ basePath: "http://127.0.0.1:1", fetch: fetchImpl });
    await expect(client.mail.members.list()).rejects.toMatchObject({ status: 0, code: "network_error" });
  });

  it("lets a cancelled call reject with the abort, not an OrgmailError", async () => {
    const fetchImpl = ((_url: string, init: RequestInit) =>
      new Promise((_resolve, reject) => {
        if (init.signal?.aborted) reject(new DOMException("aborted", "AbortError"));
        init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      })) as unknown as typeof fetch;
    const client = createClient({ basePath: "", fetch: fetchImpl });
    const controller = new AbortController();
    const pending = client.mail.mailboxes.list({}, { signal: controller.signal });
    controller.abort();
    const error = await pending.catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(OrgmailError);
    expect((error as DOMException).name).toBe("AbortError");
  });
});
