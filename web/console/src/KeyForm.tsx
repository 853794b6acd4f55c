import { createClient } from "@orgmail/client";
import type { OrgmailError } from "@orgmail/client";
import { ErrorBanner } from "@orgmail/widgets";
import { useActionState, useState } from "react";

/** Asks for an API key and checks it with one cheap call before the console uses it. */
export function KeyForm({ onKey }: { onKey: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [error, check, checking] = useActionState<OrgmailError | null>(async () => {
    const candidate = key.trim();
    try {
      await createClient({ basePath: "", headers: { Authorization: `Bearer ${candidate}` } }).mail.members.list({ limit: 1 });
    } catch (failure) {
      return failure as OrgmailError;
    }
    onKey(candidate);
    return null;
  }, null);

  return (
    <main className="console console--narrow">
      <h1 className="console__title">orgmail console</h1>
      <form className="om-widget om-form" aria-label="Open the console with an API key" action={check}>
        <p>
          Paste an API key of your organization. It stays in this browser tab only (session storage) and is sent
          to this service alone.
        </p>
        {error && !checking && <ErrorBanner error={error} />}
        <div className="om-field">
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            type="password"
            required
            autoComplete="off"
            spellCheck={false}
            placeholder="omk_…"
            value={key}
            onChange={(event) => setKey(event.target.value)}
          />
        </div>
        <p className="om-hint console__hint">
          No key yet? Run <code>.venv/bin/orgmail demo</code> and paste the <code>apiKey</code> it prints.
        </p>
        <div className="om-form__actions">
          <button type="submit" className="om-button om-button--primary" disabled={checking} aria-busy={checking}>
            {checking ? "Checking…" : "Open console"}
          </button>
          <a className="om-button om-button--quiet" href="?preview">
            See the widgets with sample data
          </a>
        </div>
      </form>
    </main>
  );
}
