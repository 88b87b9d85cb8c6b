import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseBicep, type BicepFile } from "./parser";

/** Every .bicep file under `dir`, sorted so findings come out in a stable order. */
export function bicepPaths(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((p) => p.endsWith(".bicep"))
    .sort()
    .map((p) => join(dir, p));
}

/** The templates to check, the entry template (main.bicep) first. */
export function templatePaths(infraDir: string): string[] {
  const entry = join(infraDir, "main.bicep");
  return [entry, ...bicepPaths(infraDir).filter((p) => p !== entry)];
}

/** Parses the files, naming each by its path relative to `repoRoot`. */
export async function loadBicep(repoRoot: string, paths: readonly string[]): Promise<BicepFile[]> {
  return Promise.all(paths.map((p) => parseBicep(relative(repoRoot, p), readFileSync(p, "utf8"))));
}
