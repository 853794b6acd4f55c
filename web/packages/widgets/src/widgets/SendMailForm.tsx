import type { MailMessage, MailSendInput } from "@orgmail/client";
import { useId, useRef, useState } from "react";
import { ErrorBanner } from "../shared/ErrorBanner";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { splitAddresses } from "../shared/format";
import { useAction } from "../shared/useAction";
import { sampleMessages } from "../preview";

export interface SendMailFormProps {
  /** Pre-fills From, e.g. "Example <hello@example.com>" (must be on a verified domain). */
  defaultFrom?: string;
  onSent?: (message: MailMessage) => void;
  preview?: boolean;
  title?: string;
}

function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Send one message through the service; the answer is its send-log row. */
export function SendMailForm({ defaultFrom = "", onSent, preview = false, title = "Send mail" }: SendMailFormProps) {
  const ids = { from: useId(), to: useId(), cc: useId(), bcc: useId(), subject: useId(), text: useId(), html: useId(), hint: useId() };
  const [fields, setFields] = useState({ from: defaultFrom, to: "", cc: "", bcc: "", subject: "", text: "", html: "" });
  const [sent, setSent] = useState<MailMessage | null>(null);
  const [localProblem, setLocalProblem] = useState<string | null>(null);
  const action = useAction(preview);
  // One key per draft: resubmitting the same draft after a 503 cannot send it twice; any edit is a new draft.
  const idempotencyKey = useRef<string | null>(null);

  const set = (name: keyof typeof fields) => (event: { target: { value: string } }) => {
    idempotencyKey.current = null;
    setFields((current) => ({ ...current, [name]: event.target.value }));
  };

  async function submit() {
    setSent(null);
    if (!fields.text.trim() && !fields.html.trim()) {
      setLocalProblem("Write a text or an HTML body.");
      return;
    }
    setLocalProblem(null);
    idempotencyKey.current ??= newIdempotencyKey();
    const to = splitAddresses(fields.to);
    const input: MailSendInput = {
      from: fields.from.trim(),
      to: to.length === 1 ? to[0]! : to,
      subject: fields.subject,
      idempotencyKey: idempotencyKey.current,
    };
    if (fields.cc.trim()) input.cc = splitAddresses(fields.cc);
    if (fields.bcc.trim()) input.bcc = splitAddresses(fields.bcc);
    if (fields.text.trim()) input.text = fields.text;
    if (fields.html.trim()) input.html = fields.html;
    const message = await action.run(async (client) => (await client.mail.messages.send(input)).message, {
      touches: ["messages", "suppressions"],
      preview: () => ({ ...sampleMessages[0]!, from: input.from, to, subject: input.subject }),
    });
    if (!message) return;
    idempotencyKey.current = null;
    setSent(message);
    setFields((current) => ({ ...current, to: "", cc: "", bcc: "", subject: "", text: "", html: "" }));
    onSent?.(message);
  }

  return (
    <WidgetFrame title={title} className="om-send-mail" preview={preview}>
      <form
        className="om-form"
        aria-label={title}
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
        {sent && (
          <p className="om-success" role="status">
            Message to {sent.to.join(", ")} is <StatusBadge value={sent.status} /> <code>{sent.id}</code>
          </p>
        )}
        <div className="om-field">
          <label htmlFor={ids.from}>From</label>
          <input id={ids.from} type="text" required placeholder="Name <hello@example.com>" value={fields.from} onChange={set("from")} />
        </div>
        <div className="om-field">
          <label htmlFor={ids.to}>To</label>
          <input id={ids.to} type="text" required placeholder="someone@example.org" aria-describedby={ids.hint} value={fields.to} onChange={set("to")} />
        </div>
        <details className="om-more">
          <summary>Cc and Bcc</summary>
          <div className="om-field">
            <label htmlFor={ids.cc}>Cc</label>
            <input id={ids.cc} type="text" aria-describedby={ids.hint} value={fields.cc} onChange={set("cc")} />
          </div>
          <div className="om-field">
            <label htmlFor={ids.bcc}>Bcc</label>
            <input id={ids.bcc} type="text" aria-describedby={ids.hint} value={fields.bcc} onChange={set("bcc")} />
          </div>
        </details>
        <p id={ids.hint} className="om-hint">
          Separate several addresses with commas.
        </p>
        <div className="om-field">
          <label htmlFor={ids.subject}>Subject</label>
          <input id={ids.subject} type="text" required maxLength={998} value={fields.subject} onChange={set("subject")} />
        </div>
        <div className="om-field">
          <label htmlFor={ids.text}>Text</label>
          <textarea id={ids.text} rows={5} value={fields.text} onChange={set("text")} />
        </div>
        <details className="om-more">
          <summary>HTML body</summary>
          <div className="om-field">
            <label htmlFor={ids.html}>HTML</label>
            <textarea id={ids.html} rows={5} value={fields.html} onChange={set("html")} />
          </div>
        </details>
        {localProblem && (
          <p className="om-error om-error--inline" role="alert">
            {localProblem}
          </p>
        )}
        <div className="om-form__actions">
          <button type="submit" className="om-button om-button--primary" disabled={action.pending} aria-busy={action.pending}>
            {action.pending ? "Sending…" : "Send"}
          </button>
        </div>
      </form>
    </WidgetFrame>
  );
}
