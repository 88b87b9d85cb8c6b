/**
 * `npm run bench [-- --quick] [-- --only NAME]`: runs every suite in bench/suites (one file each,
 * discovered at run time so suites can be added without touching this file), prints one table
 * and keeps the results in bench/results/.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { BenchOptions, BenchRow, BenchSuite } from "./types";

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  return abs >= 100 ? n.toFixed(0) : abs >= 1 ? n.toFixed(2) : n.toPrecision(3);
}

export function renderTable(rows: BenchRow[]): string {
  const header = ["group", "figure", "value", "baseline", "ratio", "target", "note"];
  const lines = rows.map((r) => [
    r.group,
    r.name,
    `${formatNumber(r.value)} ${r.unit}`,
    r.baseline ? `${formatNumber(r.baseline.value)} ${r.unit} (${r.baseline.name})` : "",
    r.baseline && r.baseline.value !== 0 ? `${((r.value / r.baseline.value) * 100).toFixed(0)}%` : "",
    r.target ?? "",
    r.note ?? "",
  ]);
  const all = [header, ...lines];
  const md = all.map((cells) => `| ${cells.join(" | ")} |`);
  md.splice(1, 0, `|${header.map(() => "---").join("|")}|`);
  return md.join("\n");
}

async function main(argv: string[]): Promise<void> {
  const options: BenchOptions = { quick: argv.includes("--quick") };
  const onlyIndex = argv.indexOf("--only");
  const only = onlyIndex >= 0 ? argv[onlyIndex + 1] : undefined;
  const dir = path.join(__dirname, "suites");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".js")).sort();
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  for (const file of files) {
    const name = path.basename(file, ".js");
    if (only && name !== only) continue;
    process.stderr.write(`bench: ${name}${options.quick ? " (quick)" : ""}...\n`);
    try {
      // import() of a CommonJS suite yields module.exports as `default`, itself holding `default`.
      const mod = (await import(path.join(dir, file))) as { default: { default: BenchSuite } };
      rows.push(...(await mod.default.default(options)));
    } catch (err) {
      failures.push(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  const table = renderTable(rows);
  process.stdout.write(table + "\n");
  const resultsDir = path.join(__dirname, "..", "..", "bench", "results");
  await mkdir(resultsDir, { recursive: true });
  const stamp = new Date().toISOString();
  const record = { date: stamp, quick: options.quick, node: process.version, rows, failures };
  await writeFile(
    path.join(resultsDir, `${stamp.slice(0, 10)}.json`),
    JSON.stringify(record, null, 2) + "\n",
  );
  await writeFile(
    path.join(resultsDir, "latest.md"),
    `# Benchmark results (${stamp}, Node ${process.version}${options.quick ? ", quick" : ""})\n\n` +
      "Local figures: they describe this code's overhead on this machine, not Azure capacity.\n\n" +
      table +
      "\n",
  );
  if (failures.length > 0) {
    process.stderr.write(`bench: ${failures.length} suite(s) failed:\n${failures.join("\n")}\n`);
    process.exitCode = 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
