/** A user action (create, delete, send…): pending while it runs, its error kept for the banner. */

import type { OrgmailClient, OrgmailError } from "@orgmail/client";
import { useCallback, useRef, useState } from "react";
import { useMailContext } from "../MailProvider";
import type { MailResource } from "../MailProvider";
import { noProviderError, toOrgmailError } from "./toOrgmailError";

export interface Action {
  pending: boolean;
  error: OrgmailError | null;
  clearError: () => void;
  /**
   * Runs `work` with the client; on success invalidates `touches` and returns the result, on failure
   * keeps the error and returns undefined. In preview mode, `preview()` runs instead and no call is made.
   */
  run: <T>(
    work: (client: OrgmailClient) => Promise<T>,
    options: { touches?: MailResource[]; preview?: () => T },
  ) => Promise<T | undefined>;
}

export function useAction(preview: boolean): Action {
  const context = useMailContext();
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<OrgmailError | null>(null);
  const busy = useRef(false);

  const run = useCallback<Action["run"]>(
    async (work, options) => {
      if (busy.current) return undefined;
      setError(null);
      if (preview) return options.preview?.();
      if (context === null) {
        setError(noProviderError());
        return undefined;
      }
      busy.current = true;
      setPending(true);
      try {
        const result = await work(context.client);
        for (const resource of options.touches ?? []) context.invalidate(resource);
        return result;
      } catch (failure) {
        setError(toOrgmailError(failure));
        return undefined;
      } finally {
        busy.current = false;
        setPending(false);
      }
    },
    [preview, context],
  );

  return { pending, error, clearError: () => setError(null), run };
}
