import { useId } from "react";
import type { ReactNode } from "react";

/** Every widget is a labelled region with a heading, so screen-reader users can jump between them. */
export function WidgetFrame({
  title,
  className,
  actions,
  preview,
  children,
}: {
  title: string;
  className: string;
  actions?: ReactNode;
  preview?: boolean;
  children: ReactNode;
}) {
  const headingId = useId();
  return (
    <section className={`om-widget ${className}`} aria-labelledby={headingId} data-preview={preview || undefined}>
      <header className="om-widget__header">
        <h2 id={headingId} className="om-widget__title">
          {title}
          {preview && <span className="om-badge om-badge--preview">preview</span>}
        </h2>
        {actions && <div className="om-widget__actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}
