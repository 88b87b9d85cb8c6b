/**
 * `npm run bench [-- --quick] [-- --only NAME]`: runs every suite in bench/suites (one file each,
 * discovered at run time so suites can be added without touching this file), prints one table
 * and keeps the results in bench/results/: <date>.json, latest.json, latest.md and latest.svg; a
 * complete full run also regenerates the local figures in docs/performance.md.
 * A suite that throws makes the run exit non-zero; a missed target never does (CI runs --quick
 * without thresholds, so the benchmark cannot rot yet noisy machines do not fail builds).
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { writePerformanceDoc } from "./doc";
import { type BenchRecord, renderMarkdown, renderSvg, renderTable } from "./report";
import type { BenchOptions, BenchRow, BenchSuite } from "./types";

export { renderTable } from "./report";

export const USAGE = "usage: npm run bench [-- --quick] [-- --only SUITE]";

export type BenchArgs = { help: true } | { help: false; quick: boolean; only?: string };

/**
 * A full run takes minutes and rewrites the kept results, so an argument it does not know (a typo,
 * `--help`) must stop it before it starts rather than be ignored.
 */
export function parseBenchArgs(argv: string[], suites: string[]): BenchArgs {
  let values: { quick?: boolean; only?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: "boolean" },
        only: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`, { cause: err });
  }
  if (values.help) return { help: true };
  if (values.only !== undefined && !suites.includes(values.only)) {
    throw new Error(`--only ${values.only}: no such suite; the suites are ${suites.join(", ")}`);
  }
  return { help: false, quick: values.quick ?? false, ...(values.only ? { only: values.only } : {}) };
}

async function main(argv: string[]): Promise<void> {
  const started = performance.now();
  const dir = path.join(__dirname, "suites");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".js")).sort();
  const args = parseBenchArgs(
    argv,
    files.map((f) => path.basename(f, ".js")),
  );
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const options: BenchOptions = { quick: args.quick };
  const only = args.only;
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  for (const file of files) {
    const name = path.basename(file, ".js");
    if (only && name !== only) continue;
    const t = performance.now();
    process.stderr.write(`bench: ${name}${options.quick ? " (quick)" : ""}...\n`);
    try {
      // import() of a CommonJS suite yields module.exports as `default`, itself holding `default`.
      const mod = (await import(path.join(dir, file))) as { default: { default: BenchSuite } };
      rows.push(...(await mod.default.default(options)));
    } catch (err) {
      failures.push(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    process.stderr.write(`bench: ${name} took ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  }
  process.stdout.write(renderTable(rows) + "\n");
  const record: BenchRecord = {
    date: new Date().toISOString(),
    quick: options.quick,
    node: process.version,
    machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.arch()}, shared with other work`,
    seconds: (performance.now() - started) / 1000,
    rows,
    failures,
  };
  const resultsDir = path.join(__dirname, "..", "..", "bench", "results");
  await mkdir(resultsDir, { recursive: true });
  const json = JSON.stringify(record, null, 2) + "\n";
  const suffix = `${options.quick ? "-quick" : ""}${only ? `-${only}` : ""}`;
  await writeFile(path.join(resultsDir, `${record.date.slice(0, 10)}${suffix}.json`), json);
  // A partial run (--only) must not stand as the latest results.
  if (!only) {
    await writeFile(path.join(resultsDir, "latest.json"), json);
    await writeFile(path.join(resultsDir, "latest.md"), renderMarkdown(record));
    await writeFile(path.join(resultsDir, "latest.svg"), renderSvg(record));
  }
  // Only a complete full run may stand in the doc as "the local figures".
  if (!options.quick && !only && failures.length === 0) writePerformanceDoc(record);
  process.stderr.write(`bench: done in ${record.seconds.toFixed(1)} s\n`);
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
