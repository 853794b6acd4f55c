import { useState } from "react";

export type CopyState = "idle" | "copied" | "failed";

/** Puts `value` on the clipboard; the browser may refuse (no permission, an insecure origin). */
export async function copyText(value: string): Promise<CopyState> {
  try {
    await navigator.clipboard.writeText(value);
    return "copied";
  } catch {
    return "failed";
  }
}

/**
 * A copy button that says what happened: "Copied", or "Copy failed" (the text stays on screen to be
 * selected by hand). `accessibleLabel` names what it copies when several sit side by side.
 */
export function CopyButton({
  value,
  label = "Copy",
  accessibleLabel,
  primary = false,
  onFailed,
}: {
  value: string;
  label?: string;
  accessibleLabel?: string;
  primary?: boolean;
  onFailed?: () => void;
}) {
  const [state, setState] = useState<CopyState>("idle");

  async function copy() {
    const result = await copyText(value);
    setState(result);
    if (result === "failed") onFailed?.();
  }

  const text = state === "copied" ? "Copied" : state === "failed" ? "Copy failed" : label;
  return (
    <button
      type="button"
      className={primary ? "om-button om-button--primary" : "om-button om-button--small"}
      aria-label={accessibleLabel && (state === "idle" ? accessibleLabel : `${accessibleLabel}: ${text.toLowerCase()}`)}
      onClick={() => void copy()}
    >
      {text}
    </button>
  );
}
