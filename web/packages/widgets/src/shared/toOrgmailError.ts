import { OrgmailError } from "@orgmail/client";

/** Widgets show every failure the same way; a non-orgmail throw becomes `client_error`. */
export function toOrgmailError(value: unknown): OrgmailError {
  if (value instanceof OrgmailError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new OrgmailError({ status: 0, code: "client_error", message });
}

export function isAbort(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as { name?: unknown }).name === "AbortError";
}
