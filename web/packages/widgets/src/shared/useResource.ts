/** Loading one thing through the provider's client, or returning sample data in preview mode. */

import type { OrgmailClient, OrgmailError } from "@orgmail/client";
import { useEffect, useEffectEvent, useState } from "react";
import { useMailContext } from "../MailProvider";
import type { MailResource } from "../MailProvider";
import { isAbort, noProviderError, toOrgmailError } from "./toOrgmailError";

export type ResourceState<T> =
  | { status: "idle" }
  | { status: "loading" }
  | { status: "error"; error: OrgmailError }
  | { status: "ready"; data: T };

export interface ResourceOptions<T> {
  /** Which provider resources, when invalidated, make this load again. */
  resources: MailResource[];
  /** In preview mode, `sample()` is the data and no call is made. */
  preview: boolean;
  sample: () => T;
  /** null: nothing to load (e.g. no mailbox selected); the state is `idle`. */
  load: ((client: OrgmailClient, signal: AbortSignal) => Promise<T>) | null;
  /** What `load` depends on besides the client (ids, filters). */
  key: string;
}

/** The last answer, with the load it answers: `key` is what was loaded, `request` which load of it. */
interface Answer<T> {
  key: string;
  request: string;
  state: { status: "error"; error: OrgmailError } | { status: "ready"; data: T };
}

export function useResource<T>(options: ResourceOptions<T>): ResourceState<T> & { reload: () => void } {
  const context = useMailContext();
  const client = context?.client ?? null;
  const { preview, key } = options;
  const wanted = options.load !== null;
  const [attempt, setAttempt] = useState(0);
  const versions = options.resources.map((r) => context?.versions[r] ?? 0).join(",");
  const request = `${versions}/${attempt}`;
  const [answer, setAnswer] = useState<Answer<T> | null>(null);
  // `load` is a new function each render; `key` says what it depends on.
  const load = useEffectEvent((client: OrgmailClient, signal: AbortSignal) => options.load!(client, signal));

  useEffect(() => {
    if (preview || !wanted || client === null) return;
    const controller = new AbortController();
    load(client, controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setAnswer({ key, request, state: { status: "ready", data } });
      },
      (error: unknown) => {
        if (controller.signal.aborted || isAbort(error)) return;
        setAnswer({ key, request, state: { status: "error", error: toOrgmailError(error) } });
      },
    );
    return () => controller.abort();
  }, [preview, wanted, client, key, request]);

  const reload = () => setAttempt((n) => n + 1);
  if (preview) return { status: "ready", data: options.sample(), reload };
  if (!wanted) return { status: "idle", reload };
  if (client === null) return { status: "error", error: noProviderError(), reload };
  // A reload of the same thing keeps showing the old data until the new arrives; another thing doesn't.
  if (answer === null || answer.key !== key) return { status: "loading", reload };
  if (answer.state.status === "error" && answer.request !== request) return { status: "loading", reload };
  return { ...answer.state, reload };
}
