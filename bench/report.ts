/**
 * Renders a bench run: the one table (Markdown, printed and kept as latest.md) and an SVG chart of
 * every throughput and latency figure beside its baseline. Pure functions, so tests can feed them
 * tiny synthetic rows.
 */
import type { BenchRow } from "./types";

export interface BenchRecord {
  date: string;
  quick: boolean;
  node: string;
  /** Free text about the machine, e.g. "2 cores, shared". */
  machine: string;
  /** Wall time of the whole run, seconds. */
  seconds: number;
  rows: BenchRow[];
  failures: string[];
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return "not measured";
  const abs = Math.abs(n);
  return abs >= 100 ? n.toFixed(0) : abs >= 1 ? n.toFixed(2) : n.toPrecision(3);
}

/** value / baseline as a percentage, or "" when there is no usable baseline. */
export function ratio(row: BenchRow): string {
  if (!row.baseline || row.baseline.value === 0 || !Number.isFinite(row.value)) return "";
  if (!Number.isFinite(row.baseline.value)) return "";
  return `${((row.value / row.baseline.value) * 100).toFixed(0)}%`;
}

const cell = (s: string): string => s.replace(/\|/g, "\\|");

export function renderTable(rows: BenchRow[]): string {
  const header = ["group", "figure", "value", "baseline (same run)", "ratio", "target", "note"];
  const lines = rows.map((r) => [
    r.group,
    r.name,
    `${formatNumber(r.value)} ${r.unit}`,
    r.baseline ? `${formatNumber(r.baseline.value)} ${r.unit} (${r.baseline.name})` : "",
    ratio(r),
    r.target ?? "",
    r.note ?? "",
  ]);
  const md = [header, ...lines].map((cells) => `| ${cells.map(cell).join(" | ")} |`);
  md.splice(1, 0, `|${header.map(() => "---").join("|")}|`);
  return md.join("\n");
}

export function renderMarkdown(record: BenchRecord): string {
  const failures =
    record.failures.length > 0
      ? `\n\n**${record.failures.length} suite(s) failed**; their rows are missing:\n\n` +
        record.failures.map((f) => `- ${f.split("\n")[0]}`).join("\n")
      : "";
  return (
    `# Benchmark results (${record.date}${record.quick ? ", quick" : ""})\n\n` +
    `Local figures, Node ${record.node}, ${record.machine}; whole run ${record.seconds.toFixed(0)} s. ` +
    "They describe this code's overhead on this machine, not Azure capacity " +
    "(see docs/performance.md). Chart: [latest.svg](latest.svg).\n\n" +
    renderTable(record.rows) +
    failures +
    "\n"
  );
}

/** Rows the chart shows: a finite value and baseline in a throughput or latency unit. */
export function chartRows(rows: BenchRow[]): { throughput: BenchRow[]; latency: BenchRow[] } {
  const usable = rows.filter(
    (r) => r.baseline && Number.isFinite(r.value) && Number.isFinite(r.baseline.value),
  );
  return {
    throughput: usable.filter((r) => /^(MiB|MB)\/s$/.test(r.unit)),
    latency: usable.filter((r) => r.unit === "ms"),
  };
}

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/**
 * Two panels of paired horizontal bars: each figure (dark) over its baseline (light). Each pair is
 * scaled to its own larger value, because the figures span five orders of magnitude.
 */
export function renderSvg(record: BenchRecord): string {
  const { throughput, latency } = chartRows(record.rows);
  const width = 960;
  const labelWidth = 520;
  const barMax = width - labelWidth - 140;
  const pairHeight = 34;
  const parts: string[] = [];
  let y = 30;
  parts.push(
    `<text x="10" y="20" font-size="14" font-weight="bold">device-streams bench ${esc(record.date)}${record.quick ? " (quick)" : ""}: local figures beside same-run baselines</text>`,
  );
  const panel = (title: string, rows: BenchRow[]): void => {
    y += 16;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(title)}</text>`);
    y += 8;
    if (rows.length === 0) {
      y += 16;
      parts.push(`<text x="10" y="${y}" font-size="11">no rows with a baseline in this run</text>`);
    }
    for (const r of rows) {
      const base = r.baseline!;
      const scale = Math.max(r.value, base.value) || 1;
      const w = (v: number): number => Math.max(1, Math.round((v / scale) * barMax));
      const name = r.name.length > 80 ? `${r.name.slice(0, 77)}...` : r.name;
      parts.push(
        `<text x="10" y="${y + 12}" font-size="11">${esc(name)}</text>`,
        `<text x="10" y="${y + 26}" font-size="10" fill="#666">baseline: ${esc(base.name)}</text>`,
        `<rect x="${labelWidth}" y="${y + 2}" width="${w(r.value)}" height="12" fill="#1f77b4"/>`,
        `<text x="${labelWidth + w(r.value) + 4}" y="${y + 12}" font-size="10">${esc(`${formatNumber(r.value)} ${r.unit}`)}${ratio(r) ? ` (${ratio(r)})` : ""}</text>`,
        `<rect x="${labelWidth}" y="${y + 16}" width="${w(base.value)}" height="12" fill="#aec7e8"/>`,
        `<text x="${labelWidth + w(base.value) + 4}" y="${y + 26}" font-size="10">${esc(`${formatNumber(base.value)} ${r.unit}`)}</text>`,
      );
      y += pairHeight;
    }
  };
  panel("Throughput (longer is better)", throughput);
  panel("Latency (shorter is better)", latency);
  y += 10;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n` +
    parts.join("\n") +
    "\n</svg>\n"
  );
}
