import { OrgmailError } from "@orgmail/client";

/** Widgets show every failure the same way; a non-orgmail throw becomes `client_error`. */
export function toOrgmailError(value: unknown): OrgmailError {
  if (value instanceof OrgmailError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new OrgmailError({ status: 0, code: "client_error", message });
}

/** What a widget shows when it is used outside a <MailProvider> and not in preview mode. */
export function noProviderError(): OrgmailError {
  return toOrgmailError(new Error("No <MailProvider> above this widget."));
}

export function isAbort(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as { name?: unknown }).name === "AbortError";
}
