import { useEffect, useRef, useState } from "react";

/**
 * A destructive button that asks first, in place: "Delete" becomes the question with a confirm and a
 * cancel button. Focus moves to "Cancel" (the safe choice); Escape cancels.
 */
export function ConfirmButton({
  label,
  accessibleLabel,
  question,
  confirmLabel,
  disabled,
  onConfirm,
}: {
  label: string;
  accessibleLabel?: string;
  question: string;
  confirmLabel: string;
  disabled?: boolean;
  onConfirm: () => void;
}) {
  const [asking, setAsking] = useState(false);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const openerRef = useRef<HTMLButtonElement>(null);
  const wasAsking = useRef(false);

  useEffect(() => {
    if (asking) cancelRef.current?.focus();
    else if (wasAsking.current) openerRef.current?.focus();
    wasAsking.current = asking;
  }, [asking]);

  if (!asking) {
    return (
      <button
        ref={openerRef}
        type="button"
        className="om-button om-button--danger"
        aria-label={accessibleLabel}
        disabled={disabled}
        onClick={() => setAsking(true)}
      >
        {label}
      </button>
    );
  }
  return (
    <span
      className="om-confirm"
      role="group"
      aria-label={question}
      onKeyDown={(event) => {
        if (event.key === "Escape") setAsking(false);
      }}
    >
      <span className="om-confirm__question">{question}</span>
      <button
        type="button"
        className="om-button om-button--danger"
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button ref={cancelRef} type="button" className="om-button om-button--quiet" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
