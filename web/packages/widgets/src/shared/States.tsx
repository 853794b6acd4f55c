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
