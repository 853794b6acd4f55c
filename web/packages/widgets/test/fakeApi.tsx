/**
 * The network edge for widget tests: a stubbed global fetch that answers orgmail calls by path
 * ("mailboxes/list"), records what was sent, and can hang (to see loading states) or fail.
 */

import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { vi } from "vitest";
import { MailProvider } from "../src";

type Answer = { status?: number; body: unknown };
export type Route = Answer | "hang" | ((body: Record<string, unknown>) => Answer);

export interface RecordedCall {
  path: string;
  body: Record<string, unknown>;
  headers: Headers;
}

export const BASE = "http://orgmail.test";

export function errorBody(code: string, message: string, details?: Record<string, unknown>) {
  return { error: { code, message, ...(details ? { details } : {}) } };
}

export function stubApi(routes: Record<string, Route>) {
  const calls: RecordedCall[] = [];
  const fetchMock = vi.fn(async (url: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(url)).pathname.replace(/^\/v1\/mail\//, "");
    const body = JSON.parse(String(init?.body ?? "{}")) as Record<string, unknown>;
    calls.push({ path, body, headers: new Headers(init?.headers) });
    const route = routes[path];
    if (route === "hang") {
      return new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      });
    }
    const answer: Answer =
      route === undefined
        ? { status: 404, body: errorBody("not_found", "No such endpoint.") }
        : typeof route === "function"
          ? route(body)
          : route;
    return new Response(JSON.stringify(answer.body), {
      status: answer.status ?? 200,
      headers: { "Content-Type": "application/json" },
    });
  });
  vi.stubGlobal("fetch", fetchMock);
  return { calls, fetchMock, pathsCalled: () => calls.map((c) => c.path) };
}

export function renderWithProvider(ui: ReactElement) {
  return render(
    <MailProvider basePath={BASE} headers={{ Authorization: "Bearer omk_01JCTESTKEY_test-secret" }}>
      {ui}
    </MailProvider>,
  );
}
