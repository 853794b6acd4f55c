/**
 * <MailProvider>: one orgmail client for the widgets below it, and a way for one widget to tell the
 * others that a resource changed (a created mailbox shows up in the list without a page reload).
 */

import { createClient } from "@orgmail/client";
import type { ClientOptions, OrgmailClient } from "@orgmail/client";
import { createContext, useCallback, useContext, useLayoutEffect, useMemo, useState } from "react";
import type { ReactNode } from "react";

export type MailResource = "mailboxes" | "messages" | "suppressions" | "members" | "domains" | "webhooks";

interface MailContextValue {
  client: OrgmailClient;
  versions: Record<MailResource, number>;
  invalidate: (resource: MailResource) => void;
}

const MailContext = createContext<MailContextValue | null>(null);

export interface MailProviderProps {
  /** Where the service is: `""` for the page's own origin, or `https://mail.example.com`. */
  basePath: string;
  /** Sent with every call, e.g. `{ Authorization: "Bearer omk_…" }`; may change between renders. */
  headers?: ClientOptions["headers"];
  /** A fetch to use instead of the global one (a proxy, a test double). */
  fetch?: typeof fetch;
  children?: ReactNode;
}

export function MailProvider({ basePath, headers, fetch: fetchImpl, children }: MailProviderProps) {
  const connection = useMemo(() => connect(basePath), [basePath]);
  // A layout effect, so that the first headers are in place before the widgets' effects make their calls.
  useLayoutEffect(() => connection.update({ headers, fetch: fetchImpl }), [connection, headers, fetchImpl]);
  const client = connection.client;

  const [versions, setVersions] = useState<Record<MailResource, number>>({
    mailboxes: 0,
    messages: 0,
    suppressions: 0,
    members: 0,
    domains: 0,
    webhooks: 0,
  });
  const invalidate = useCallback((resource: MailResource) => {
    setVersions((current) => ({ ...current, [resource]: current[resource] + 1 }));
  }, []);

  const value = useMemo(() => ({ client, versions, invalidate }), [client, versions, invalidate]);
  return <MailContext.Provider value={value}>{children}</MailContext.Provider>;
}

type LiveOptions = Pick<ClientOptions, "headers" | "fetch">;

/**
 * A client for `basePath` that reads its headers and fetch at call time from what `update()` last set:
 * a host's new object literal on each render must not make a new client, which would reload every widget.
 */
function connect(basePath: string): { client: OrgmailClient; update: (options: LiveOptions) => void } {
  let live: LiveOptions = {};
  const client = createClient({
    basePath,
    headers: async () => (typeof live.headers === "function" ? await live.headers() : (live.headers ?? {})),
    fetch: (input, init) => (live.fetch ?? globalThis.fetch)(input, init),
  });
  return {
    client,
    update: (options) => {
      live = options;
    },
  };
}

/** The provider's value, or null outside one (fine for widgets in preview mode). */
export function useMailContext(): MailContextValue | null {
  return useContext(MailContext);
}

/** The client of the nearest <MailProvider>, for a host page's own calls. */
export function useMailClient(): OrgmailClient {
  const context = useContext(MailContext);
  if (context === null) throw new Error("useMailClient() needs a <MailProvider basePath=…> above it.");
  return context.client;
}

/** Tell the widgets showing `resource` to load it again. */
export function useInvalidate(): (resource: MailResource) => void {
  const context = useContext(MailContext);
  return context?.invalidate ?? noop;
}

function noop() {}
