import type { ReactNode } from "react";

export function Loading({ label }: { label: string }) {
  return (
    <p className="om-loading" role="status" aria-live="polite">
      <span className="om-spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="om-empty">{children}</p>;
}

/** What the last action did ("… is deleted."), announced; nothing while there is none. */
export function Notice({ text }: { text: string | null }) {
  if (!text) return null;
  return (
    <p className="om-success" role="status">
      {text}
    </p>
  );
}
