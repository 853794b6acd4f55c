/** Every failed call becomes one OrgmailError: the service's error body, or what went wrong on the way. */

export interface OrgmailErrorInit {
  status: number;
  code: string;
  message: string;
  details?: Record<string, unknown> | undefined;
  retryAfter?: number | undefined;
}

export class OrgmailError extends Error {
  /** HTTP status; 0 when the service could not be reached at all. */
  readonly status: number;
  /** The service's snake_case code (`mailbox_taken`), or `network_error` / `invalid_response`. */
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds from the `Retry-After` header (503s), when the service sent one. */
  readonly retryAfter: number | undefined;

  constructor(init: OrgmailErrorInit) {
    super(init.message);
    this.name = "OrgmailError";
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
    this.retryAfter = init.retryAfter;
  }
}

export function isOrgmailError(value: unknown): value is OrgmailError {
  return value instanceof OrgmailError;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads `{"error": {code, message, details?}}`; anything else still yields an error a person can read. */
export function errorFromResponse(status: number, body: unknown, retryAfterHeader: string | null): OrgmailError {
  const retryAfter = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : undefined;
  const error = isRecord(body) ? body["error"] : undefined;
  if (isRecord(error) && typeof error["code"] === "string" && typeof error["message"] === "string") {
    const details = isRecord(error["details"]) ? error["details"] : undefined;
    return new OrgmailError({ status, code: error["code"], message: error["message"], details, retryAfter });
  }
  return new OrgmailError({
    status,
    code: "invalid_response",
    message: `The service answered HTTP ${status} without an orgmail error body.`,
    retryAfter,
  });
}
