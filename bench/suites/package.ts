/**
 * The deployable artifact (`npm run package`): its size zipped and unzipped, its file count, and
 * its cold load time: a fresh Node process loading the entry point through the
 * `@azure/functions-core` stand-in until every function is registered, as the Functions worker
 * does at a cold start. Baseline: the same for the unbundled build (dist/functions/index.js with
 * the repository's node_modules), in the same run.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { buildArtifact, formatMB, zipArtifact } from "../../deploy/package";
import { percentile } from "../stats";
import type { BenchSuite } from "../types";

const run = promisify(execFile);
const REPO = resolve(__dirname, "..", "..", "..");
const HARNESS = join(REPO, "dist", "devstack", "functionsCore.js");
const MB = 1024 * 1024;
/** The simulated `azd deploy` package issue 14 measured before this artifact existed. */
const OLD_PACKAGE = { bytes: 372 * MB, files: 37_643 };

/** Median wall time of `runs` fresh processes loading `appDir` through the stand-in. */
async function coldLoadMs(appDir: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { stdout } = await run(process.execPath, [HARNESS, appDir], { cwd: appDir });
    times.push((JSON.parse(stdout) as { loadMs: number }).loadMs);
  }
  return percentile(
    times.sort((a, b) => a - b),
    50,
  );
}

const suite: BenchSuite = async ({ quick }) => {
  const work = await mkdtemp(join(tmpdir(), "bench-package-"));
  try {
    const artifact = await buildArtifact(REPO, join(work, "api"));
    const zipped = zipArtifact(artifact.dir, join(work, "api.zip"));
    const runs = quick ? 3 : 9;
    const bundled = await coldLoadMs(artifact.dir, runs);
    const unbundled = await coldLoadMs(REPO, runs);
    const group = "deploy";
    return [
      {
        group,
        name: "artifact size, unzipped (npm run package)",
        value: artifact.bytes / MB,
        unit: "MB",
        baseline: { name: "package before (issue 14, simulated azd deploy)", value: OLD_PACKAGE.bytes / MB },
        target: `<= ${formatMB(0.15 * OLD_PACKAGE.bytes)} (15%)`,
        note: `${artifact.packages.length} npm packages and ${artifact.sources.length} source files in one bundle`,
      },
      { group, name: "artifact size, zipped (what azd uploads)", value: zipped / MB, unit: "MB" },
      {
        group,
        name: "artifact files",
        value: artifact.files.length,
        unit: "files",
        baseline: { name: "package before (issue 14)", value: OLD_PACKAGE.files },
      },
      {
        group,
        name: `cold load, fresh node to all functions registered (median of ${runs})`,
        value: bundled,
        unit: "ms",
        baseline: { name: "unbundled dist/ + node_modules, same stand-in", value: unbundled },
        note: "local disk; Azure's mounted package is slower per file, which favours the bundle more",
      },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
};

export default suite;
