// `npm run package`: the function app as Azure runs it, in .deploy/api (azure.yaml's `dist`).
// One bundle (esbuild) of functions/index.ts and exactly what it imports, plus host.json and a
// package.json whose `main` is the bundle. Bundling follows imports, so the client side (client/),
// devDependencies and the device/CLI-only packages cannot come along unless the control plane
// imports them, and then the build fails. Only `@azure/functions-core`, which the Functions worker
// provides at run time, stays outside the bundle.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative, resolve, sep } from "node:path";
import { build, type Metafile } from "esbuild";

/** Provided by the Functions worker, not on npm (Azure/azure-functions-nodejs-library#201). */
export const WORKER_PROVIDED = ["@azure/functions-core"];

/**
 * Optional peers that their users `require` inside try/catch and do without: ws's native speed-ups
 * and node-fetch's `encoding`. esbuild leaves such calls in place; they fail quietly in Azure too.
 */
export const OPTIONAL_REQUIRES = ["bufferutil", "utf-8-validate", "encoding"];

/** Packages only the device side or the CLI use; the control plane must never load them. */
export const CLIENT_ONLY_PACKAGES = [
  "azure-iot-device",
  "azure-iot-device-mqtt",
  "commander",
  "protobufjs",
  "@azure/web-pubsub-client",
  "@azure/msal-browser",
];

/** Folders of this repository the control plane may import from (a shared `common/` included). */
const CLIENT_SIDE_FOLDERS = ["client", "bin", "devstack", "emulators", "bench", "test"];

export const ENTRY = "functions/index.ts";
export const BUNDLE = "index.js";
/** Node 20 is the oldest runtime the app supports (package.json engines); Azure runs 22. */
export const TARGET = "node20";

export interface Artifact {
  readonly dir: string;
  /** Files in the artifact, relative to `dir`, sorted. */
  readonly files: readonly string[];
  readonly bytes: number;
  /** npm packages bundled, sorted. */
  readonly packages: readonly string[];
  /** Repository files bundled (outside node_modules), sorted. */
  readonly sources: readonly string[];
  /** Modules the bundle still `require`s that are neither built-ins nor bundled, sorted. */
  readonly unbundled: readonly string[];
}

export class PackageError extends Error {
  override readonly name = "PackageError";
}

/** `node_modules/@scope/name/...` or `node_modules/name/...` → the package name (innermost). */
export function packageOf(input: string): string | undefined {
  const parts = input.split(/[\\/]/);
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) return undefined;
  const first = parts[at + 1];
  if (!first) return undefined;
  return first.startsWith("@") ? `${first}/${parts[at + 2] ?? ""}` : first;
}

/** What a bundle must not contain: devDependencies, client-only packages, client-side sources. */
export function forbiddenInputs(inputs: readonly string[], devDependencies: readonly string[]): string[] {
  const forbiddenPackages = new Set([...devDependencies, ...CLIENT_ONLY_PACKAGES]);
  return inputs.filter((input) => {
    const pkg = packageOf(input);
    if (pkg !== undefined) return forbiddenPackages.has(pkg);
    return CLIENT_SIDE_FOLDERS.some((folder) => input.startsWith(`${folder}/`));
  });
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((p) => statSync(join(dir, p)).isFile())
    .map((p) => p.split(sep).join("/"))
    .sort();
}

/** The licence texts of the bundled packages: bundling copies their code, so their notices come too. */
function thirdPartyNotices(repoRoot: string, packages: readonly string[]): string {
  const sections = packages.map((pkg) => {
    const dir = join(repoRoot, "node_modules", pkg);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      version?: string;
      license?: string;
    };
    const licenceFile = existsSync(dir)
      ? readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f))
      : undefined;
    const text = licenceFile ? readFileSync(join(dir, licenceFile), "utf8").trim() : "(no licence file)";
    return `${pkg}@${manifest.version ?? "?"} (${manifest.license ?? "unknown"})\n\n${text}\n`;
  });
  return `Third-party code bundled into ${BUNDLE}:\n\n${sections.join(`\n${"-".repeat(72)}\n\n`)}`;
}

/** Builds the artifact into `outDir` (emptied first) from the repository at `repoRoot`. */
export async function buildArtifact(repoRoot: string, outDir: string): Promise<Artifact> {
  const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    name: string;
    version: string;
    description?: string;
    license?: string;
    engines?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    absWorkingDir: repoRoot,
    entryPoints: [ENTRY],
    outfile: join(outDir, BUNDLE),
    bundle: true,
    platform: "node",
    format: "cjs",
    target: TARGET,
    external: WORKER_PROVIDED,
    // Not minified: stack traces in Application Insights stay readable without source maps.
    metafile: true,
    logLevel: "silent",
  });
  if (result.warnings.length > 0)
    throw new PackageError(`esbuild: ${result.warnings.map((w) => w.text).join("; ")}`);
  const metafile: Metafile = result.metafile;
  const inputs = Object.keys(metafile.inputs).sort();
  const forbidden = forbiddenInputs(inputs, Object.keys(manifest.devDependencies ?? {}));
  if (forbidden.length > 0) {
    rmSync(outDir, { recursive: true, force: true });
    throw new PackageError(
      `the control plane imports what it must not ship (client side, device/CLI-only or dev packages):\n  ${forbidden.join("\n  ")}`,
    );
  }
  const unbundled = [
    ...new Set(
      Object.values(metafile.outputs)
        .flatMap((o) => o.imports)
        .filter((i) => i.external && !isBuiltin(i.path))
        .map((i) => i.path),
    ),
  ].sort();
  const unexpected = unbundled.filter((m) => !WORKER_PROVIDED.includes(m) && !OPTIONAL_REQUIRES.includes(m));
  if (unexpected.length > 0) {
    rmSync(outDir, { recursive: true, force: true });
    throw new PackageError(`esbuild left these imports unbundled: ${unexpected.join(", ")}`);
  }
  const packages = [...new Set(inputs.map(packageOf).filter((p): p is string => p !== undefined))].sort();
  writeFileSync(join(outDir, "host.json"), readFileSync(join(repoRoot, "host.json")));
  // The project's own licence travels with its code, beside the notices of what was bundled into it.
  writeFileSync(join(outDir, "LICENSE"), readFileSync(join(repoRoot, "LICENSE")));
  writeFileSync(
    join(outDir, "package.json"),
    `${JSON.stringify(
      {
        name: manifest.name,
        version: manifest.version,
        ...(manifest.description ? { description: manifest.description } : {}),
        ...(manifest.license ? { license: manifest.license } : {}),
        private: true,
        main: BUNDLE,
        ...(manifest.engines ? { engines: manifest.engines } : {}),
        // Everything the app imports is in the bundle.
        dependencies: {},
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(join(outDir, "THIRD-PARTY-NOTICES.txt"), thirdPartyNotices(repoRoot, packages));
  const files = listFiles(outDir);
  const bytes = files.reduce((sum, f) => sum + statSync(join(outDir, f)).size, 0);
  return {
    dir: outDir,
    files,
    bytes,
    packages,
    sources: inputs.filter((i) => packageOf(i) === undefined),
    unbundled,
  };
}

/** Zips `dir` (its contents at the zip's root, as azd does) with Info-ZIP; returns the zip's size. */
export function zipArtifact(dir: string, zipPath: string): number {
  rmSync(zipPath, { force: true });
  const zip = spawnSync("zip", ["-q", "-r", "-X", resolve(zipPath), "."], { cwd: dir, encoding: "utf8" });
  if (zip.error || zip.status !== 0)
    throw new PackageError(`zip failed: ${zip.error?.message ?? zip.stderr.trim()} (is Info-ZIP installed?)`);
  return statSync(zipPath).size;
}

const MB = 1024 * 1024;
export const formatMB = (bytes: number) => `${(bytes / MB).toFixed(2)} MB`;

async function main(): Promise<number> {
  const repoRoot = process.cwd();
  const outDir = join(repoRoot, ".deploy", "api");
  const started = Date.now();
  const artifact = await buildArtifact(repoRoot, outDir);
  const zipped = zipArtifact(outDir, join(repoRoot, ".deploy", "api.zip"));
  console.log(
    `package: ${relative(repoRoot, outDir)} in ${Date.now() - started} ms: ${artifact.files.length} files, ` +
      `${formatMB(artifact.bytes)} unzipped, ${formatMB(zipped)} zipped (.deploy/api.zip); ` +
      `${artifact.packages.length} npm packages and ${artifact.sources.length} source files bundled`,
  );
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`package: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
