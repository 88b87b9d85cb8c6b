// `npm run infra:build`: compiles infra/main.bicep with the real Bicep compiler where
// one is installed (`az bicep build`, else a standalone `bicep`), which catches what
// the tree-sitter checks in `npm test` cannot: types, api versions, scopes. Where
// neither exists it says so and exits 0, unless INFRA_BUILD_REQUIRED=1 (for CI
// machines that are meant to have the CLI).
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";

export type BuildPlan = { command: string; args: string[] } | { skip: string };

/** The absolute path of an executable on PATH, or undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter).filter((d) => d !== "")) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export function planBuild(
  entry: string,
  outDir: string,
  which: (name: string) => string | undefined,
): BuildPlan {
  const az = which("az");
  if (az) return { command: az, args: ["bicep", "build", "--file", entry, "--outdir", outDir] };
  const bicep = which("bicep");
  if (bicep) return { command: bicep, args: ["build", entry, "--outdir", outDir] };
  return {
    skip: "infra:build SKIPPED: neither `az` nor `bicep` is on PATH, so main.bicep was not compiled. The tree-sitter checks in `npm test` still apply.",
  };
}

function main(): number {
  // npm runs scripts from the package root; an explicit path may follow.
  const entry = resolve(process.argv[2] ?? join("infra", "main.bicep"));
  if (!existsSync(entry)) {
    console.error(`infra:build: ${entry} not found`);
    return 1;
  }
  // The ARM JSON is only proof that it compiles: keep it out of the repository.
  const outDir = mkdtempSync(join(tmpdir(), "infra-build-"));
  try {
    const plan = planBuild(entry, outDir, (name) => findOnPath(name));
    if ("skip" in plan) {
      console.log(plan.skip);
      return process.env.INFRA_BUILD_REQUIRED === "1" ? 1 : 0;
    }
    console.log(`infra:build: ${[plan.command, ...plan.args].join(" ")}`);
    const result = spawnSync(plan.command, plan.args, { stdio: "inherit" });
    if (result.error) throw result.error;
    console.log(result.status === 0 ? "infra:build: main.bicep compiles" : "infra:build: FAILED");
    return result.status ?? 1;
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

if (require.main === module) process.exitCode = main();
