// `npm run infra:types-update -- <checkout of Azure/bicep-types-az>`: replaces infra/types with
// the type files for exactly the types and API versions infra/ declares, from `generated/` of
// that checkout, and records its commit. Declarations with no file there are listed as missing
// (the type check then names them instead of failing on them).
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { TypeBaseKind, readTypesJson } from "bicep-types";
import { loadBicep, templatePaths } from "./files";
import { declarations } from "./rules/azureTypes";
import { SOURCE_FILE, TYPES_DIR, type TypeSource, typeKey } from "./typeData";

export interface UpdateResult {
  readonly copied: readonly string[];
  readonly source: TypeSource;
}

/** `type@version` of every resource declaration under infra/, as written (first spelling wins). */
export async function declaredTypes(repoRoot: string): Promise<Map<string, string>> {
  const files = await loadBicep(repoRoot, templatePaths(join(repoRoot, "infra")));
  const declared = new Map<string, string>();
  for (const file of files) {
    for (const d of declarations(file)) {
      const key = typeKey(d.type, d.apiVersion);
      if (!declared.has(key)) declared.set(key, `${d.type}@${d.apiVersion}`);
    }
  }
  return declared;
}

/** Upstream files that may hold `namespace@version`: generated/<group>/<namespace>/<version>/types.json. */
function candidates(checkout: string, namespace: string, version: string): string[] {
  const generated = join(checkout, "generated");
  return readdirSync(generated, { withFileTypes: true })
    .filter((group) => group.isDirectory())
    .map((group) => `generated/${group.name}/${namespace.toLowerCase()}/${version}/types.json`)
    .filter((path) => existsSync(join(checkout, path)));
}

function gitCommit(checkout: string): string {
  const git = spawnSync("git", ["-C", checkout, "rev-parse", "HEAD"], { encoding: "utf8" });
  return git.status === 0 ? git.stdout.trim() : "unknown (not a git checkout)";
}

export async function updateTypes(repoRoot: string, checkout: string): Promise<UpdateResult> {
  if (!existsSync(join(checkout, "generated")))
    throw new Error(`${checkout}: no generated/ folder (expected a checkout of Azure/bicep-types-az)`);
  const declared = await declaredTypes(repoRoot);
  const wanted = new Set<string>();
  const missing: string[] = [];
  for (const [key, spelled] of declared) {
    const at = key.lastIndexOf("@");
    const [namespace = ""] = key.slice(0, at).split("/");
    const file = candidates(checkout, namespace, key.slice(at + 1)).find((path) =>
      readTypesJson(readFileSync(join(checkout, path), "utf8")).some(
        (t) => t.type === TypeBaseKind.ResourceType && t.name.toLowerCase() === key,
      ),
    );
    if (file) wanted.add(file);
    else missing.push(spelled);
  }
  const target = join(repoRoot, TYPES_DIR);
  rmSync(join(target, "generated"), { recursive: true, force: true });
  const copied = [...wanted].sort();
  for (const path of copied) {
    mkdirSync(dirname(join(target, path)), { recursive: true });
    copyFileSync(join(checkout, path), join(target, path));
  }
  if (existsSync(join(checkout, "LICENSE"))) copyFileSync(join(checkout, "LICENSE"), join(target, "LICENSE"));
  const source: TypeSource = {
    repository: "Azure/bicep-types-az",
    commit: gitCommit(checkout),
    missing: missing.sort(),
  };
  writeFileSync(join(target, SOURCE_FILE), `${JSON.stringify(source, null, 2)}\n`);
  return { copied, source };
}

async function main(): Promise<number> {
  const [checkout] = process.argv.slice(2);
  if (!checkout) {
    console.error("usage: npm run infra:types-update -- <path to a checkout of Azure/bicep-types-az>");
    return 2;
  }
  const { copied, source } = await updateTypes(process.cwd(), resolve(checkout));
  console.log(`infra:types-update: ${copied.length} type files from ${source.repository}@${source.commit}`);
  for (const m of source.missing) console.log(`  missing upstream: ${m}`);
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`infra:types-update: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
