import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { loadAppRouteTable } from "./functionsApp";
import type { DevStackDeps } from "./start";

/** The repository root, found from this file (devstack/ in the sources, dist/devstack/ when built). */
export function repositoryRoot(from: string = __dirname): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "device-streams"
    )
      return dir;
    if (dirname(dir) === dir) throw new Error(`no device-streams package.json above ${from}`);
  }
}

/**
 * What `npm start` runs the local stack with: the function app loaded the way the Functions worker
 * loads it (package.json `main`), from the repository's build or from `--app <dir>`.
 */
export function productionDeps(): DevStackDeps {
  return {
    createRouteTable: (env, options) => loadAppRouteTable(options.app || repositoryRoot(), env),
  };
}
