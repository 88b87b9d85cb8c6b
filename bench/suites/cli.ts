/**
 * CLI cold start (issue 17): `devicestream --help` as a user runs it (a fresh process on the
 * checkout's dist/bin/devicestream.js), and the memory the CLI's modules take once loaded, each
 * beside bare Node (`node -e 0`) measured in the same run. Spawns alternate between the two, so
 * load on a shared machine shifts both alike. A missed target is reported, never a failure.
 */
import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { percentile } from "../stats";
import type { BenchSuite } from "../types";

const run = promisify(execFile);
const DIST = resolve(__dirname, "..", "..");
const BIN = join(DIST, "bin", "devicestream.js");
const MIB = 1024 * 1024;
/** The goal: at most this much above bare Node. */
const TARGET_MS = 150;

async function wallMs(args: string[]): Promise<number> {
  const t = performance.now();
  await run(process.execPath, args);
  return performance.now() - t;
}

/** RSS of a fresh process after it ran `code` (which requires what is measured). */
async function rssMiB(code: string): Promise<number> {
  const { stdout } = await run(process.execPath, [
    "-e",
    `${code};process.stdout.write(String(process.memoryUsage().rss))`,
  ]);
  return Number(stdout) / MIB;
}

const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

const suite: BenchSuite = async ({ quick }) => {
  const runs = quick ? 5 : 21;
  const bare: number[] = [];
  const help: number[] = [];
  const bareRss: number[] = [];
  const cliRss: number[] = [];
  // What the checkout's bin loads before it parses: the CLI and the local stack's `dev` extension.
  const loadCli = ["client/cli/program", "devstack/devCommands"]
    .map((m) => `require(${JSON.stringify(join(DIST, m))})`)
    .join(";");
  await wallMs(["-e", "0"]); // warm the file cache once for both
  await wallMs([BIN, "--help"]);
  for (let i = 0; i < runs; i++) {
    bare.push(await wallMs(["-e", "0"]));
    help.push(await wallMs([BIN, "--help"]));
    if (i < Math.min(runs, 5)) {
      bareRss.push(await rssMiB("0"));
      cliRss.push(await rssMiB(loadCli));
    }
  }
  const group = "footprint";
  const bareMs = median(bare);
  const helpMs = median(help);
  return [
    {
      group,
      name: `CLI cold start, devicestream --help (median of ${runs} fresh processes)`,
      value: helpMs,
      unit: "ms",
      baseline: { name: "bare node -e 0", value: bareMs },
      target: `<= bare node + ${TARGET_MS} ms`,
      note: `+${(helpMs - bareMs).toFixed(0)} ms above bare Node (before issue 17's lazy loading: +347 ms here)`,
    },
    {
      group,
      name: "CLI modules loaded, RSS (program + dev extension, median of 5)",
      value: median(cliRss),
      unit: "MiB",
      baseline: { name: "bare node -e 0", value: median(bareRss) },
      note: `+${(median(cliRss) - median(bareRss)).toFixed(1)} MiB (before: 81 MiB, +41 MiB)`,
    },
  ];
};

export default suite;
