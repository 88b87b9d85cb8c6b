// `npm run pack`: the installable packages as tarballs in .packs/ (docs/decisions.md §3).
// - the client (`client/`, an npm workspace): `devicestream` with the agent, and the device and
//   service SDKs, with `common/` compiled in;
// - the function app: the artifact `npm run package` builds (.deploy/api), packed as it is.
// The install test (test/e2e/install.test.ts) and the bench's size figure use the same functions,
// so what they measure is what this script writes.
import { execFile } from "node:child_process";
import { lstat, mkdir, readdir } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { buildArtifact, formatMB } from "./package";

const run = promisify(execFile);

export const CLIENT_WORKSPACE = "client";
export const PACKS_DIR = ".packs";

/**
 * The environment for an npm child process. `npm run`/`npm test` export where their own project
 * lives (npm_config_local_prefix, ...); inherited, they would point the child at this repository
 * instead of the directory it runs in. Registry, cache and TLS settings stay.
 */
export function npmEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) {
    if (/^npm_(package_|lifecycle_)/i.test(key)) continue;
    if (/^npm_config_(local_prefix|prefix|global|call|workspaces?|include_workspace_root)$/i.test(key))
      continue;
    out[key] = value;
  }
  return out;
}

async function npm(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run("npm", args, { cwd, env: npmEnv(), maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`npm ${args.join(" ")} (in ${cwd}) failed: ${err.stderr?.trim() || err.message}`, {
      cause: e,
    });
  }
}

/** `npm pack --json`'s answer: the tarball's file name, relative to the pack destination. */
function packedFile(stdout: string): string {
  const [entry] = JSON.parse(stdout) as { filename: string }[];
  if (!entry) throw new Error(`npm pack printed no package: ${stdout.slice(0, 200)}`);
  // npm names a scoped package's tarball `scope-name-version.tgz` in its JSON as in the file system.
  return entry.filename.replace(/^@/, "").replace(/\//, "-");
}

/** Builds the client workspace (its `prepack` script) and packs it into `outDir`; returns the tarball. */
export async function packClient(repoRoot: string, outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const stdout = await npm(
    ["pack", "--json", "--workspace", CLIENT_WORKSPACE, "--pack-destination", resolve(outDir)],
    repoRoot,
  );
  return join(resolve(outDir), packedFile(stdout));
}

/** Packs the directory of a built function app (`buildArtifact`'s output) into `outDir`. */
export async function packDirectory(dir: string, outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const stdout = await npm(["pack", "--json", "--pack-destination", resolve(outDir), resolve(dir)], dir);
  return join(resolve(outDir), packedFile(stdout));
}

/**
 * Installs packages into `dir` as a device owner does: runtime dependencies only, from the npm cache
 * where it can. `dir` should be empty; npm writes its package.json there. `specs` are what
 * `npm install` takes (a tarball must be a path with a slash, e.g. absolute).
 */
export async function installPackages(dir: string, specs: readonly string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await npm(["install", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund", ...specs], dir);
}

export const installTarballs = (dir: string, tarballs: readonly string[]) =>
  installPackages(
    dir,
    tarballs.map((t) => resolve(t)),
  );

export interface TreeSize {
  /** Apparent bytes: the sum of file sizes (symbolic links count their own length), as `du -sb`. */
  bytes: number;
  files: number;
  /** Installed packages under node_modules (nested copies each count), `names` sorted. */
  names: string[];
}

/** What an install put under `dir/node_modules`. */
export async function installedTree(dir: string): Promise<TreeSize> {
  const size: TreeSize = { bytes: 0, files: 0, names: [] };
  async function walk(path: string): Promise<void> {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) await walk(full);
      else {
        size.bytes += (await lstat(full)).size;
        size.files += 1;
      }
    }
  }
  async function packages(modules: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(modules, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
      const full = join(modules, entry.name);
      if (entry.name.startsWith("@")) {
        for (const scoped of await readdir(full, { withFileTypes: true })) {
          if (!scoped.isDirectory()) continue;
          size.names.push(`${entry.name}/${scoped.name}`);
          await packages(join(full, scoped.name, "node_modules"));
        }
      } else {
        size.names.push(entry.name);
        await packages(join(full, "node_modules"));
      }
    }
  }
  const modules = join(dir, "node_modules");
  await walk(modules);
  await packages(modules);
  size.names.sort();
  return size;
}

async function main(): Promise<number> {
  const repoRoot = process.cwd();
  const outDir = join(repoRoot, PACKS_DIR);
  const client = await packClient(repoRoot, outDir);
  const artifact = await buildArtifact(repoRoot, join(repoRoot, ".deploy", "api"));
  const app = await packDirectory(artifact.dir, outDir);
  for (const tarball of [client, app]) {
    console.log(`pack: ${relative(repoRoot, tarball)} (${formatMB((await lstat(tarball)).size)})`);
  }
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`pack: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
