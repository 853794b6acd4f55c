/** Loading one thing through the provider's client, or returning sample data in preview mode. */

import type { OrgmailClient, OrgmailError } from "@orgmail/client";
import { useEffect, useRef, useState } from "react";
import { useMailContext } from "../MailProvider";
import type { MailResource } from "../MailProvider";
import { isAbort, toOrgmailError } from "./toOrgmailError";

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

export function useResource<T>(options: ResourceOptions<T>): ResourceState<T> & { reload: () => void } {
  const context = useMailContext();
  const [state, setState] = useState<ResourceState<T>>(() =>
    options.preview ? { status: "ready", data: options.sample() } : { status: "loading" },
  );
  const [attempt, setAttempt] = useState(0);
  const version = options.resources.map((r) => context?.versions[r] ?? 0).join(",");
  const { preview, load } = options;
  const shownKey = useRef<string | null>(null);

  useEffect(() => {
    if (preview) {
      setState({ status: "ready", data: options.sample() });
      return;
    }
    if (load === null) {
      setState({ status: "idle" });
      return;
    }
    if (context === null) {
      setState({ status: "error", error: toOrgmailError(new Error("No <MailProvider> above this widget.")) });
      return;
    }
    const controller = new AbortController();
    // A reload of the same thing keeps showing the old data until the new arrives; another thing doesn't.
    const sameKey = shownKey.current === options.key;
    setState((current) => (sameKey && current.status === "ready" ? current : { status: "loading" }));
    load(context.client, controller.signal).then(
      (data) => {
        if (controller.signal.aborted) return;
        shownKey.current = options.key;
        setState({ status: "ready", data });
      },
      (error: unknown) => {
        if (!controller.signal.aborted && !isAbort(error)) setState({ status: "error", error: toOrgmailError(error) });
      },
    );
    return () => controller.abort();
    // `load` is a new function each render; `key` says what it depends on.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [preview, load === null, context?.client, options.key, version, attempt]);

  return { ...state, reload: () => setAttempt((n) => n + 1) };
}
