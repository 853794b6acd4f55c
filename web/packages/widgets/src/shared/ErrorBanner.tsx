import type { OrgmailError } from "@orgmail/client";

interface FieldProblem {
  path: string;
  message: string;
}

function fieldProblems(error: OrgmailError): FieldProblem[] {
  const fields = error.details?.["fields"];
  if (!Array.isArray(fields)) return [];
  return fields.filter(
    (f): f is FieldProblem =>
      typeof f === "object" && f !== null && typeof f.path === "string" && typeof f.message === "string",
  );
}

/** The service's error as a person reads it: the message, the code, and which fields were wrong. */
export function ErrorBanner({ error, onRetry, onDismiss }: { error: OrgmailError; onRetry?: () => void; onDismiss?: () => void }) {
  const problems = fieldProblems(error);
  return (
    <div className="om-error" role="alert">
      <p className="om-error__message">
        <code className="om-error__code">{error.code}</code> {error.message}
      </p>
      {problems.length > 0 && (
        <ul className="om-error__fields">
          {problems.map((problem) => (
            <li key={problem.path + problem.message}>
              <code>{problem.path}</code>: {problem.message}
            </li>
          ))}
        </ul>
      )}
      {(onRetry || onDismiss) && (
        <div className="om-error__actions">
          {onRetry && (
            <button type="button" className="om-button" onClick={onRetry}>
              Try again
            </button>
          )}
          {onDismiss && (
            <button type="button" className="om-button om-button--quiet" onClick={onDismiss}>
              Dismiss
            </button>
          )}
        </div>
      )}
    </div>
  );
}
