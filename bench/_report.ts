/**
 * Markdown tables: one per proxy with absolute numbers and proxy/raw ratios,
 * and a summary of the ratios side by side.
 *
 * @module
 */

/** The middle value (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One line of a proxy's table; a string cell is an error or a note. */
export interface Row {
  readonly name: string;
  readonly raw?: number | string;
  readonly proxy?: number | string;
  /** Show proxy/raw for this row. */
  readonly ratio?: boolean;
}

/** Rounds to a precision that suits the magnitude. */
export function fmt(value: number | string | undefined): string {
  if (value === undefined) return "–";
  if (typeof value === "string") return value;
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  return value.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : 2);
}

/** proxy/raw, or undefined when either side is missing. */
export function ratio(row: Row): number | undefined {
  if (!row.ratio || typeof row.raw !== "number" || typeof row.proxy !== "number") {
    return undefined;
  }
  return row.raw === 0 ? undefined : row.proxy / row.raw;
}

function table(head: string[], body: string[][]): string {
  const lines = [head, head.map(() => "---"), ...body];
  return lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

/** The table of one proxy. */
export function serverTable(title: string, rows: readonly Row[]): string {
  const body = rows.map((row) => {
    const r = ratio(row);
    return [row.name, fmt(row.raw), fmt(row.proxy), r === undefined ? "–" : `${fmt(r)}×`];
  });
  return `### ${title}\n\n${table(["measurement", "raw TCP", "via proxy", "proxy/raw"], body)}\n`;
}

/** Ratios of every proxy side by side, plus the absolute rows without ratio. */
export function summaryTable(results: ReadonlyMap<string, readonly Row[]>): string {
  const names = [...results.keys()];
  const first = [...results.values()][0] ?? [];
  const body = first.map((row, i) => {
    const cells = names.map((name) => {
      const other = results.get(name)?.[i];
      if (!other) return "–";
      if (!other.ratio) return fmt(other.proxy);
      const r = ratio(other);
      return r === undefined ? fmt(other.proxy) : `${fmt(r)}×`;
    });
    return [row.ratio ? `${row.name} (proxy/raw)` : row.name, ...cells];
  });
  return `### Summary\n\n${table(["measurement", ...names], body)}\n`;
}
