/** A newest-first list loaded page by page with the service's opaque cursor ("Load more"). */

import type { OrgmailClient, OrgmailError } from "@orgmail/client";
import { useEffect, useEffectEvent, useRef, useState } from "react";
import { useMailContext } from "../MailProvider";
import type { MailResource } from "../MailProvider";
import { isAbort, noProviderError, toOrgmailError } from "./toOrgmailError";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface PagedListOptions<T> {
  resource: MailResource;
  preview: boolean;
  sample: () => T[];
  loadPage: (client: OrgmailClient, cursor: string | null, signal: AbortSignal) => Promise<Page<T>>;
  /** What `loadPage` depends on besides the cursor (filters); a change starts from the first page. */
  key: string;
}

export interface PagedList<T> {
  status: "loading" | "error" | "ready";
  items: T[];
  error: OrgmailError | null;
  nextCursor: string | null;
  loadingMore: boolean;
  loadMore: () => void;
  reload: () => void;
  /** Local edits: preview mode's stand-in for a round trip. */
  setItems: (update: (items: T[]) => T[]) => void;
}

/** The rows on screen, with the load they came from: `key` is the filter, `request` which load of it. */
interface Shown<T> {
  key: string;
  request: string;
  status: "error" | "ready";
  items: T[];
  nextCursor: string | null;
  error: OrgmailError | null;
}

export function usePagedList<T>(options: PagedListOptions<T>): PagedList<T> {
  const context = useMailContext();
  const client = context?.client ?? null;
  const { preview, key } = options;
  const [attempt, setAttempt] = useState(0);
  const request = `${context?.versions[options.resource] ?? 0}/${attempt}`;
  const [shown, setShown] = useState<Shown<T> | null>(() =>
    preview ? { key, request, status: "ready", items: options.sample(), nextCursor: null, error: null } : null,
  );
  /** The request whose next page is on its way. */
  const [loadingMoreOf, setLoadingMoreOf] = useState<string | null>(null);
  // Aborted when another first page is wanted, which also cancels a "Load more" still on its way.
  const requestController = useRef<AbortController | null>(null);
  const loadFirstPage = useEffectEvent((client: OrgmailClient, signal: AbortSignal) => options.loadPage(client, null, signal));

  useEffect(() => {
    if (preview || client === null) return;
    const controller = new AbortController();
    requestController.current = controller;
    loadFirstPage(client, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return;
        setShown({ key, request, status: "ready", items: page.items, nextCursor: page.nextCursor, error: null });
      },
      (failure: unknown) => {
        if (controller.signal.aborted || isAbort(failure)) return;
        setShown({ key, request, status: "error", items: [], nextCursor: null, error: toOrgmailError(failure) });
      },
    );
    return () => controller.abort();
  }, [preview, client, key, request]);

  function loadMore() {
    const controller = requestController.current;
    if (client === null || controller === null || shown?.request !== request || shown.nextCursor === null) return;
    if (loadingMoreOf === request) return;
    setLoadingMoreOf(request);
    options.loadPage(client, shown.nextCursor, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return;
        setShown((current) => current && { ...current, items: [...current.items, ...page.items], nextCursor: page.nextCursor, error: null });
        setLoadingMoreOf(null);
      },
      (failure: unknown) => {
        if (controller.signal.aborted || isAbort(failure)) return;
        setShown((current) => current && { ...current, error: toOrgmailError(failure) });
        setLoadingMoreOf(null);
      },
    );
  }

  const actions = {
    loadMore,
    reload: () => setAttempt((n) => n + 1),
    setItems: (update: (items: T[]) => T[]) => setShown((current) => current && { ...current, items: update(current.items) }),
  };
  if (!preview && client === null) {
    return { status: "error", items: [], error: noProviderError(), nextCursor: null, loadingMore: false, ...actions };
  }
  // A reload after a change keeps the rows on screen; another filter, or a retry, starts from "Loading".
  const stale = shown === null || shown.key !== key || (shown.status === "error" && shown.request !== request);
  if (!preview && stale) return { status: "loading", items: [], error: null, nextCursor: null, loadingMore: false, ...actions };
  const { status, items, nextCursor, error } = shown ?? { status: "ready", items: options.sample(), nextCursor: null, error: null };
  return { status, items, error, nextCursor, loadingMore: loadingMoreOf === request, ...actions };
}
