/** A newest-first list loaded page by page with the service's opaque cursor ("Load more"). */

import type { OrgmailClient, OrgmailError } from "@orgmail/client";
import { useCallback, useEffect, useRef, useState } from "react";
import { useMailContext } from "../MailProvider";
import type { MailResource } from "../MailProvider";
import { isAbort, toOrgmailError } from "./toOrgmailError";

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

export function usePagedList<T>(options: PagedListOptions<T>): PagedList<T> {
  const context = useMailContext();
  const { preview } = options;
  const [status, setStatus] = useState<PagedList<T>["status"]>(preview ? "ready" : "loading");
  const [items, setItemsState] = useState<T[]>(() => (preview ? options.sample() : []));
  const [error, setError] = useState<OrgmailError | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const version = context?.versions[options.resource] ?? 0;
  const loadPageRef = useRef(options.loadPage);
  loadPageRef.current = options.loadPage;
  const moreController = useRef<AbortController | null>(null);
  const shownKey = useRef<string | null>(null);

  useEffect(() => {
    if (preview) {
      setItemsState(options.sample());
      setStatus("ready");
      return;
    }
    if (context === null) {
      setError(toOrgmailError(new Error("No <MailProvider> above this widget.")));
      setStatus("error");
      return;
    }
    const controller = new AbortController();
    moreController.current?.abort();
    setLoadingMore(false);
    // A reload after a change keeps the rows on screen; another filter starts from "Loading".
    if (shownKey.current !== options.key) setStatus("loading");
    else setStatus((current) => (current === "error" ? "loading" : current));
    loadPageRef.current(context.client, null, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return;
        shownKey.current = options.key;
        setItemsState(page.items);
        setNextCursor(page.nextCursor);
        setError(null);
        setStatus("ready");
      },
      (failure: unknown) => {
        if (controller.signal.aborted || isAbort(failure)) return;
        setError(toOrgmailError(failure));
        setStatus("error");
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [preview, context?.client, options.key, version, attempt]);

  const loadMore = useCallback(() => {
    if (context === null || nextCursor === null || loadingMore) return;
    const controller = new AbortController();
    moreController.current = controller;
    setLoadingMore(true);
    loadPageRef.current(context.client, nextCursor, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return;
        setItemsState((current) => [...current, ...page.items]);
        setNextCursor(page.nextCursor);
        setError(null);
        setLoadingMore(false);
      },
      (failure: unknown) => {
        if (controller.signal.aborted || isAbort(failure)) return;
        setError(toOrgmailError(failure));
        setLoadingMore(false);
      },
    );
  }, [context, nextCursor, loadingMore]);

  return {
    status,
    items,
    error,
    nextCursor,
    loadingMore,
    loadMore,
    reload: () => setAttempt((n) => n + 1),
    setItems: (update) => setItemsState(update),
  };
}
