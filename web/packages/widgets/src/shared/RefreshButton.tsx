/** The header's "Refresh" for a widget that reloads its data on demand. */
export function RefreshButton({ onClick }: { onClick: () => void }) {
  return (
    <button type="button" className="om-button om-button--quiet" onClick={onClick}>
      Refresh
    </button>
  );
}
