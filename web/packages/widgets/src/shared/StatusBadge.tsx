/** A message status, a suppression reason or an assignment, as a small coloured label. */
export function StatusBadge({ value, tone }: { value: string; tone?: string }) {
  return <span className={`om-badge om-badge--${tone ?? value}`}>{value}</span>;
}
