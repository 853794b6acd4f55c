import type { ReactNode } from "react";
import { DataTable } from "./DataTable";
import type { DataTableProps } from "./DataTable";
import { ErrorBanner } from "./ErrorBanner";
import { LoadMore } from "./LoadMore";
import { Empty, Loading } from "./States";
import type { PagedList } from "./usePagedList";

/**
 * A paged list's body: "Loading", the first page's error with a retry, the empty message, or the
 * table with "Load more" (and a failed next page's error, retried by loading it again).
 */
export function PagedTable<T>({
  list,
  rows = list.items,
  loadingLabel,
  empty,
  ...table
}: Omit<DataTableProps<T>, "rows"> & {
  list: PagedList<T>;
  /** The rows to show, when not all of `list.items` (preview mode's local filter). */
  rows?: T[];
  loadingLabel: string;
  empty: ReactNode;
}) {
  return (
    <>
      {list.status === "loading" && <Loading label={loadingLabel} />}
      {list.status === "error" && list.error && <ErrorBanner error={list.error} onRetry={list.reload} />}
      {list.status === "ready" && rows.length === 0 && <Empty>{empty}</Empty>}
      {list.status === "ready" && rows.length > 0 && (
        <>
          <DataTable {...table} rows={rows} />
          {list.error && <ErrorBanner error={list.error} onRetry={list.loadMore} />}
          <LoadMore hasMore={list.nextCursor !== null} loading={list.loadingMore} onLoadMore={list.loadMore} />
        </>
      )}
    </>
  );
}
