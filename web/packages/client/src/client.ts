/**
 * createClient(): `client.mail.<resource>.<verb>(input)` for every orgmail operation.
 *
 * Each call is `POST {basePath}/v1/mail/<resource>/<verb>` with a JSON object body; a non-2xx answer
 * (or no answer) rejects with an OrgmailError.
 */

import type { Input, Output } from "./contract";
import { OrgmailError, errorFromResponse } from "./errors";

type HeaderSource = HeadersInit | (() => HeadersInit | Promise<HeadersInit>);

export interface ClientOptions {
  /** Where the service is: `https://mail.example.com`, or `""` for the page's own origin. */
  basePath: string;
  /** Defaults to the global fetch, looked up at call time. */
  fetch?: typeof fetch;
  /** Sent with every call, e.g. `{ Authorization: "Bearer omk_…" }`; a function is called per request. */
  headers?: HeaderSource;
}

export interface RequestOptions {
  signal?: AbortSignal;
  headers?: HeadersInit;
}

type Call<P extends string> = (input: Input<P>, options?: RequestOptions) => Promise<Output<P>>;
/** Operations whose whole input is optional (`OrgScoped?` in DESIGN.md): lists. */
type OptionalCall<P extends string> = (input?: Input<P>, options?: RequestOptions) => Promise<Output<P>>;

export interface OrgmailClient {
  mail: {
    mailboxes: {
      create: Call<"/v1/mail/mailboxes/create">;
      get: Call<"/v1/mail/mailboxes/get">;
      list: OptionalCall<"/v1/mail/mailboxes/list">;
      assign: Call<"/v1/mail/mailboxes/assign">;
      delete: Call<"/v1/mail/mailboxes/delete">;
      clientSettings: Call<"/v1/mail/mailboxes/clientSettings">;
    };
    messages: {
      send: Call<"/v1/mail/messages/send">;
      get: Call<"/v1/mail/messages/get">;
      list: OptionalCall<"/v1/mail/messages/list">;
      events: Call<"/v1/mail/messages/events">;
    };
    suppressions: {
      add: Call<"/v1/mail/suppressions/add">;
      list: OptionalCall<"/v1/mail/suppressions/list">;
      remove: Call<"/v1/mail/suppressions/remove">;
    };
    members: {
      add: Call<"/v1/mail/members/add">;
      list: OptionalCall<"/v1/mail/members/list">;
      remove: Call<"/v1/mail/members/remove">;
    };
    domains: {
      add: Call<"/v1/mail/domains/add">;
      get: Call<"/v1/mail/domains/get">;
      list: OptionalCall<"/v1/mail/domains/list">;
      verify: Call<"/v1/mail/domains/verify">;
      delete: Call<"/v1/mail/domains/delete">;
    };
    webhooks: {
      create: Call<"/v1/mail/webhooks/create">;
      get: Call<"/v1/mail/webhooks/get">;
      list: OptionalCall<"/v1/mail/webhooks/list">;
      delete: Call<"/v1/mail/webhooks/delete">;
      test: Call<"/v1/mail/webhooks/test">;
      deliveries: Call<"/v1/mail/webhooks/deliveries">;
    };
  };
}

async function resolveHeaders(source: HeaderSource | undefined): Promise<HeadersInit> {
  if (source === undefined) return {};
  return typeof source === "function" ? await source() : source;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function createClient(options: ClientOptions): OrgmailClient {
  const basePath = options.basePath.replace(/\/+$/, "");

  async function post<P extends string>(path: P, input: unknown, request?: RequestOptions): Promise<Output<P>> {
    const headers = new Headers(await resolveHeaders(options.headers));
    new Headers(request?.headers).forEach((value, name) => headers.set(name, value));
    headers.set("Content-Type", "application/json");
    headers.set("Accept", "application/json");
    const fetchImpl = options.fetch ?? globalThis.fetch;
    request?.signal?.throwIfAborted();

    let response: Response;
    try {
      response = await fetchImpl(basePath + path, {
        method: "POST",
        headers,
        body: JSON.stringify(input ?? {}),
        signal: request?.signal,
      });
    } catch (cause) {
      if (request?.signal?.aborted) throw cause; // the caller cancelled; not an orgmail failure
      throw new OrgmailError({
        status: 0,
        code: "network_error",
        message: `Could not reach the orgmail service (${cause instanceof Error ? cause.message : String(cause)}).`,
      });
    }

    const body = await readJson(response);
    if (!response.ok) throw errorFromResponse(response.status, body, response.headers.get("Retry-After"));
    if (typeof body !== "object" || body === null) {
      throw new OrgmailError({
        status: response.status,
        code: "invalid_response",
        message: "The service answered without a JSON object.",
      });
    }
    return body as Output<P>;
  }

  function call<P extends string>(path: P): Call<P> {
    return (input, request) => post(path, input, request);
  }
  function optionalCall<P extends string>(path: P): OptionalCall<P> {
    return (input, request) => post(path, input, request);
  }

  return {
    mail: {
      mailboxes: {
        create: call("/v1/mail/mailboxes/create"),
        get: call("/v1/mail/mailboxes/get"),
        list: optionalCall("/v1/mail/mailboxes/list"),
        assign: call("/v1/mail/mailboxes/assign"),
        delete: call("/v1/mail/mailboxes/delete"),
        clientSettings: call("/v1/mail/mailboxes/clientSettings"),
      },
      messages: {
        send: call("/v1/mail/messages/send"),
        get: call("/v1/mail/messages/get"),
        list: optionalCall("/v1/mail/messages/list"),
        events: call("/v1/mail/messages/events"),
      },
      suppressions: {
        add: call("/v1/mail/suppressions/add"),
        list: optionalCall("/v1/mail/suppressions/list"),
        remove: call("/v1/mail/suppressions/remove"),
      },
      members: {
        add: call("/v1/mail/members/add"),
        list: optionalCall("/v1/mail/members/list"),
        remove: call("/v1/mail/members/remove"),
      },
      domains: {
        add: call("/v1/mail/domains/add"),
        get: call("/v1/mail/domains/get"),
        list: optionalCall("/v1/mail/domains/list"),
        verify: call("/v1/mail/domains/verify"),
        delete: call("/v1/mail/domains/delete"),
      },
      webhooks: {
        create: call("/v1/mail/webhooks/create"),
        get: call("/v1/mail/webhooks/get"),
        list: optionalCall("/v1/mail/webhooks/list"),
        delete: call("/v1/mail/webhooks/delete"),
        test: call("/v1/mail/webhooks/test"),
        deliveries: call("/v1/mail/webhooks/deliveries"),
      },
    },
  };
}
