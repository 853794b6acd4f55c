import { useEffect, useId, useRef, useState } from "react";
import type { ReactNode } from "react";
import { CopyButton } from "./CopyButton";

/**
 * A secret the service shows once (a mailbox password, a webhook signing secret): selected and
 * focused, with a copy button and the warning that it will not be shown again. Leaving it ("Done")
 * is the caller's `onDone`, which drops the secret from state.
 */
export function OneTimeSecret({
  regionLabel,
  confirmation,
  label,
  secret,
  copyLabel,
  warning,
  onDone,
}: {
  /** The region's accessible name, e.g. "New mailbox password". */
  regionLabel: string;
  /** What was created, announced as a status. */
  confirmation: ReactNode;
  /** The field's label, e.g. "Password". */
  label: string;
  secret: string;
  copyLabel: string;
  /** Why to copy it now; it describes the field. */
  warning: ReactNode;
  onDone: () => void;
}) {
  const fieldId = useId();
  const warningId = useId();
  const [copyFailed, setCopyFailed] = useState(false);
  const fieldRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    fieldRef.current?.focus();
    fieldRef.current?.select();
  }, []);

  return (
    <div className="om-one-time" role="region" aria-label={regionLabel}>
      <p className="om-success" role="status">
        {confirmation}
      </p>
      <div className="om-field">
        <label htmlFor={fieldId}>{label}</label>
        <div className="om-copy-row">
          <input
            id={fieldId}
            ref={fieldRef}
            className="om-password"
            type="text"
            readOnly
            value={secret}
            aria-describedby={warningId}
            spellCheck={false}
          />
          <CopyButton
            value={secret}
            label={copyLabel}
            primary
            onFailed={() => {
              // No clipboard permission (or an insecure origin): leave the text selected for Ctrl+C.
              fieldRef.current?.select();
              setCopyFailed(true);
            }}
          />
        </div>
      </div>
      <p id={warningId} className="om-warning">
        {warning}
      </p>
      {copyFailed && (
        <p className="om-muted" role="status">
          The browser did not allow copying; the {label.toLowerCase()} is selected, press Ctrl+C (⌘C).
        </p>
      )}
      <div className="om-form__actions">
        <button type="button" className="om-button" onClick={onDone}>
          Done, I saved it
        </button>
      </div>
    </div>
  );
}
