const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateTimeWithSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/**
 * A timestamp as the reader's local time, keeping the ISO value machine-readable. `seconds` for
 * timelines and delivery logs, whose steps are often within the same minute.
 */
export function Timestamp({ value, seconds = false }: { value: string | null | undefined; seconds?: boolean }) {
  if (!value) return <span className="om-muted">—</span>;
  const date = new Date(value);
  return (
    <time dateTime={value} title={value}>
      {Number.isNaN(date.getTime()) ? value : (seconds ? dateTimeWithSeconds : dateTime).format(date)}
    </time>
  );
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** "a@x, b@y" → ["a@x", "b@y"]; commas, semicolons and line breaks separate addresses. */
export function splitAddresses(value: string): string[] {
  return value
    .split(/[,;\n]/)
    .map((part) => part.trim())
    .filter((part) => part !== "");
}
