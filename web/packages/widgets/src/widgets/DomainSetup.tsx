import type { DnsCheck, DnsRecord, Domain, DomainVerified, DomainWithRecords } from "@orgmail/client";
import { useId, useState } from "react";
import { ConfirmButton } from "../shared/ConfirmButton";
import { CopyButton } from "../shared/CopyButton";
import { DataTable } from "../shared/DataTable";
import type { Column } from "../shared/DataTable";
import { ErrorBanner } from "../shared/ErrorBanner";
import { PagedTable } from "../shared/PagedTable";
import { Loading, Notice } from "../shared/States";
import { StatusBadge } from "../shared/StatusBadge";
import { WidgetFrame } from "../shared/WidgetFrame";
import { Timestamp } from "../shared/format";
import { useAction } from "../shared/useAction";
import { usePagedList } from "../shared/usePagedList";
import { useResource } from "../shared/useResource";
import { sampleDnsChecks, sampleDnsRecords, sampleDomains } from "../preview";
import { RefreshButton } from "../shared/RefreshButton";

export interface DomainSetupProps {
  onAdded?: (added: DomainWithRecords) => void;
  onVerified?: (domain: Domain) => void;
  onDeleted?: (domain: Domain) => void;
  pageSize?: number;
  preview?: boolean;
  title?: string;
}

const PURPOSES: Record<DnsRecord["purpose"], string> = {
  verification: "proves the domain is yours",
  dkim: "DKIM public key: receivers check the signature with it",
  spf: "SPF suggestion: which servers send for the domain",
  dmarc: "DMARC suggestion: what receivers do with mail that fails",
};

/**
 * Sending domains, from adding one to verified: the TXT records to publish (with copy buttons),
 * a verify that looks them up now and shows each check's expected and found values, and delete.
 */
export function DomainSetup({ onAdded, onVerified, onDeleted, pageSize = 50, preview = false, title = "Domains" }: DomainSetupProps) {
  const list = usePagedList<Domain>({
    resource: "domains",
    preview,
    sample: () => sampleDomains,
    key: String(pageSize),
    loadPage: async (client, cursor, signal) => {
      const page = await client.mail.domains.list({ limit: pageSize, cursor }, { signal });
      return { items: page.domains, nextCursor: page.nextCursor };
    },
  });
  // Preview mode opens its pending sample, so the records show without a click.
  const [selectedId, setSelectedId] = useState<string | null>(preview ? sampleDomains[0]!.id : null);
  const [notice, setNotice] = useState<string | null>(null);
  const rowAction = useAction(preview);

  async function remove(domain: Domain) {
    setNotice(null);
    const ok = await rowAction.run(async (client) => (await client.mail.domains.delete({ id: domain.id })).ok, {
      touches: ["domains"],
      preview: () => true,
    });
    if (!ok) return;
    list.setItems((items) => items.filter((d) => d.id !== domain.id));
    setSelectedId((current) => (current === domain.id ? null : current));
    setNotice(`${domain.name} is deleted, with its DKIM keys.`);
    onDeleted?.(domain);
  }

  const columns: Column<Domain>[] = [
    {
      header: "Domain",
      cell: (d) => (
        <button type="button" className="om-link" onClick={() => setSelectedId(d.id)} aria-current={selectedId === d.id ? "true" : undefined}>
          {d.name}
        </button>
      ),
    },
    { header: "Status", cell: (d) => <StatusBadge value={d.status} /> },
    { header: "Verified", cell: (d) => <Timestamp value={d.verifiedAt} /> },
    { header: "Added", cell: (d) => <Timestamp value={d.createdAt} /> },
    {
      header: "Actions",
      className: "om-actions",
      cell: (d) => (
        <ConfirmButton
          label="Delete"
          accessibleLabel={`Delete ${d.name}`}
          question={`Delete ${d.name} and its DKIM keys?`}
          confirmLabel="Delete domain"
          disabled={rowAction.pending}
          onConfirm={() => void remove(d)}
        />
      ),
    },
  ];

  const selected = list.items.find((d) => d.id === selectedId) ?? null;
  return (
    <WidgetFrame
      title={title}
      className="om-domain-setup"
      preview={preview}
      actions={!preview && <RefreshButton onClick={list.reload} />}
    >
      <AddDomain
        preview={preview}
        onAdded={(added) => {
          setNotice(null);
          list.setItems((items) => [added.domain, ...items.filter((d) => d.id !== added.domain.id)]);
          setSelectedId(added.domain.id);
          onAdded?.(added);
        }}
      />
      {rowAction.error && <ErrorBanner error={rowAction.error} onDismiss={rowAction.clearError} />}
      <Notice text={notice} />
      <PagedTable
        list={list}
        loadingLabel="Loading domains…"
        empty="No domains yet. Add the domain you send from."
        caption={title}
        columns={columns}
        rowKey={(d) => d.id}
        selectedKey={selectedId}
      />
      {selectedId !== null && (
        // Keyed by the domain: another domain starts with no verification result on screen.
        <DomainRecords
          key={selectedId}
          id={selectedId}
          listed={selected}
          preview={preview}
          onVerified={(domain) => {
            list.setItems((items) => items.map((d) => (d.id === domain.id ? domain : d)));
            if (domain.status === "verified") onVerified?.(domain);
          }}
        />
      )}
    </WidgetFrame>
  );
}

function AddDomain({ preview, onAdded }: { preview: boolean; onAdded: (added: DomainWithRecords) => void }) {
  const nameId = useId();
  const [name, setName] = useState("");
  const action = useAction(preview);

  async function submit() {
    const input = { name: name.trim() };
    const added = await action.run((client) => client.mail.domains.add(input), {
      touches: ["domains"],
      preview: () => {
        const domain: Domain = {
          ...sampleDomains[0]!,
          id: `dom_preview_${Date.now()}`,
          name: input.name.toLowerCase(),
          createdAt: new Date().toISOString(),
        };
        return { domain, records: sampleDnsRecords(domain) };
      },
    });
    if (!added) return;
    setName("");
    onAdded(added);
  }

  return (
    <form
      className="om-form om-form--row"
      aria-label="Add domain"
      onSubmit={(event) => {
        event.preventDefault();
        void submit();
      }}
    >
      <div className="om-field om-field--grow">
        <label htmlFor={nameId}>Domain name</label>
        <input
          id={nameId}
          type="text"
          required
          autoComplete="off"
          spellCheck={false}
          placeholder="example.com"
          value={name}
          onChange={(event) => setName(event.target.value)}
        />
      </div>
      <div className="om-form__actions">
        <button type="submit" className="om-button om-button--primary" disabled={action.pending} aria-busy={action.pending}>
          {action.pending ? "Adding…" : "Add domain"}
        </button>
      </div>
      {action.error && (
        <div className="om-form__full">
          <ErrorBanner error={action.error} onDismiss={action.clearError} />
        </div>
      )}
    </form>
  );
}

const recordColumns: Column<DnsRecord>[] = [
  { header: "Type", cell: (r) => r.type },
  {
    header: "Name",
    className: "om-dns-name",
    cell: (r) => (
      <span className="om-copy-cell">
        <code>{r.name}</code>
        <CopyButton value={r.name} accessibleLabel={`Copy the name ${r.name}`} />
      </span>
    ),
  },
  {
    header: "Value",
    className: "om-dns-value",
    cell: (r) => (
      <span className="om-copy-cell">
        <code>{r.value}</code>
        <CopyButton value={r.value} accessibleLabel={`Copy the value of ${r.name} (${r.purpose})`} />
      </span>
    ),
  },
  {
    header: "Purpose",
    cell: (r) => (
      <span className="om-stack">
        <span>{r.purpose}</span>
        <span className="om-muted">{PURPOSES[r.purpose]}</span>
      </span>
    ),
  },
  { header: "Required", cell: (r) => (r.required ? <StatusBadge value="required" /> : <StatusBadge value="optional" />) },
];

const checkColumns: Column<DnsCheck>[] = [
  { header: "Record", className: "om-dns-name", cell: (c) => <code>{c.name}</code> },
  { header: "Expected", className: "om-dns-value", cell: (c) => <code>{c.expected}</code> },
  {
    header: "Found",
    className: "om-dns-value",
    cell: (c) =>
      c.found.length === 0 ? (
        <span className="om-muted">nothing published</span>
      ) : (
        <ul className="om-plain-list">
          {c.found.map((value, index) => (
            <li key={index}>
              <code>{value}</code>
            </li>
          ))}
        </ul>
      ),
  },
  { header: "Result", cell: (c) => (c.ok ? <StatusBadge value="ok" /> : <StatusBadge value="not ok" tone="error" />) },
];

/** One domain: what to publish, and verify. */
function DomainRecords({
  id,
  listed,
  preview,
  onVerified,
}: {
  id: string;
  /** The row in the list, for preview mode's stand-in answer. */
  listed: Domain | null;
  preview: boolean;
  onVerified: (domain: Domain) => void;
}) {
  const headingId = useId();
  const detail = useResource<DomainWithRecords>({
    resources: ["domains"],
    preview,
    sample: () => {
      const domain = listed ?? sampleDomains[0]!;
      return { domain, records: sampleDnsRecords(domain) };
    },
    load: async (client, signal) => client.mail.domains.get({ id }, { signal }),
    key: id,
  });
  const [verification, setVerification] = useState<DomainVerified | null>(null);
  const action = useAction(preview);

  async function verify() {
    const result = await action.run<DomainVerified>((client) => client.mail.domains.verify({ id }), {
      touches: ["domains"],
      preview: () => {
        const domain = listed ?? sampleDomains[0]!;
        return {
          domain: { ...domain, status: "verified", verifiedAt: domain.verifiedAt ?? new Date().toISOString() },
          checks: sampleDnsChecks(domain),
        };
      },
    });
    if (!result) return;
    setVerification(result);
    onVerified(result.domain);
  }

  if (detail.status === "loading") return <Loading label="Loading DNS records…" />;
  if (detail.status === "error") return <ErrorBanner error={detail.error} onRetry={detail.reload} />;
  if (detail.status !== "ready") return null;
  // verify's answer is the newest word on the status until the reload it triggered arrives.
  const domain = verification?.domain ?? detail.data.domain;
  const required = detail.data.records.filter((r) => r.required).length;

  return (
    <section className="om-domain-records" aria-labelledby={headingId}>
      <header className="om-subheader">
        <h3 id={headingId} className="om-subheading">
          {domain.name} <StatusBadge value={domain.status} />
        </h3>
        <button type="button" className="om-button om-button--primary" onClick={() => void verify()} disabled={action.pending} aria-busy={action.pending}>
          {action.pending ? "Verifying…" : "Verify"}
        </button>
      </header>
      <p className="om-muted om-domain-records__lead">
        {domain.status === "verified" ? (
          <>
            Verified <Timestamp value={domain.verifiedAt} />: mail can be sent from any address at {domain.name}. Keep these records published.
          </>
        ) : (
          <>
            Publish these TXT records at your DNS provider, then press Verify. The {required} required records (verification and each DKIM key)
            must match; SPF and DMARC are suggestions. New records can take a while to be visible.
          </>
        )}
      </p>
      {action.error && <ErrorBanner error={action.error} onDismiss={action.clearError} />}
      {verification && <VerificationResult verification={verification} />}
      <h4 className="om-subheading om-subheading--minor">Records to publish</h4>
      <DataTable caption={`DNS records for ${domain.name}`} columns={recordColumns} rows={detail.data.records} rowKey={(r) => `${r.purpose}/${r.name}`} />
    </section>
  );
}

function VerificationResult({ verification }: { verification: DomainVerified }) {
  const { domain, checks } = verification;
  const passed = checks.filter((c) => c.ok).length;
  const summary =
    passed === checks.length
      ? `Every required record matches: ${domain.name} is verified.`
      : domain.status === "verified"
        ? `${domain.name} stays verified, but ${checks.length - passed} of ${checks.length} required records no longer match.`
        : `Not verified yet: ${passed} of ${checks.length} required records match. Publish the rest and verify again.`;
  return (
    <div className="om-verification" role="region" aria-label="Verification result">
      <h4 className="om-subheading om-subheading--minor">Verification checks</h4>
      <p className={passed === checks.length ? "om-success" : "om-warning"} role="status">
        {summary}
      </p>
      <DataTable caption="Verification checks" columns={checkColumns} rows={checks} rowKey={(c) => `${c.name}/${c.expected}`} />
    </div>
  );
}
