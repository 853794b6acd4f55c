import type { ReactNode } from "react";

export interface Column<T> {
  header: string;
  cell: (row: T) => ReactNode;
  className?: string;
}

export interface DataTableProps<T> {
  caption: string;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  selectedKey?: string | null | undefined;
  /** Extra content under a row (an inline form), spanning all columns. */
  after?: (row: T) => ReactNode;
}

/** A plain, captioned table; rows are keyed by id and may be marked as selected. */
export function DataTable<T>({ caption, columns, rows, rowKey, selectedKey, after }: DataTableProps<T>) {
  return (
    <div className="om-table-wrap">
      <table className="om-table">
        <caption className="om-visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column.header} scope="col" className={column.className}>
                {column.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const key = rowKey(row);
            const extra = after?.(row);
            return (
              <RowGroup key={key}>
                <tr aria-current={selectedKey === key ? "true" : undefined} className={selectedKey === key ? "om-row--selected" : undefined}>
                  {columns.map((column) => (
                    <td key={column.header} className={column.className}>
                      {column.cell(row)}
                    </td>
                  ))}
                </tr>
                {extra ? (
                  <tr className="om-row--extra">
                    <td colSpan={columns.length}>{extra}</td>
                  </tr>
                ) : null}
              </RowGroup>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function RowGroup({ children }: { children: ReactNode }) {
  return <>{children}</>;
}
