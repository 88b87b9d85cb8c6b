/**
 * The package boundary (issue 17): the client (`client/`) ships without the control plane, the
 * emulators or the local stack, and `common/` is what both sides share, so it imports neither.
 * A static scan of every import specifier (static, type-only, re-export, require, import(), import
 * types), as TypeScript's own pre-processor reads them.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { isBuiltin } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import ts from "typescript";

const REPO = resolve(__dirname, "..", "..");

/** Folders of this repository a room must not reach, and packages it must not load. */
const RULES: Record<string, { folders: string[]; packages: string[] }> = {
  client: {
    folders: ["shared", "functions", "emulators", "devstack"],
    packages: ["@azure/functions", "@azure/data-tables"],
  },
  common: {
    folders: ["shared", "functions", "emulators", "devstack", "client"],
    packages: ["@azure/functions", "@azure/data-tables"],
  },
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    // The client package's build output (client/dist) and installed dependencies are not sources.
    if (entry.isDirectory()) return ["dist", "node_modules"].includes(entry.name) ? [] : sourceFiles(path);
    return /\.(ts|js|mjs|cjs)$/.test(entry.name) ? [path] : [];
  });
}

const specifiersOf = (file: string) =>
  ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((f) => f.fileName);

/** Every specifier of `file` that breaks `rule`, as "specifier (why)". */
function violations(file: string, rule: { folders: string[]; packages: string[] }, root = REPO): string[] {
  return specifiersOf(file).flatMap((spec) => {
    if (spec.startsWith(".")) {
      const top = relative(root, resolve(dirname(file), spec)).split(sep)[0]!;
      return rule.folders.includes(top) ? [`${spec} (reaches ${top}/)`] : [];
    }
    const hit = rule.packages.find((p) => spec === p || spec.startsWith(`${p}/`));
    return hit ? [`${spec} (package ${hit})`] : [];
  });
}

describe("package boundary", () => {
  it.each(Object.keys(RULES))("nothing under %s/ imports what its package must not ship", (room) => {
    const files = sourceFiles(join(REPO, room));
    expect(files.length).toBeGreaterThan(room === "client" ? 20 : 4);
    const found = files.flatMap((file) =>
      violations(file, RULES[room]!).map((v) => `${relative(REPO, file)}: ${v}`),
    );
    expect(found).toEqual([]);
  });

  it("the scan sees every kind of import", () => {
    const dir = mkdtempSync(join(tmpdir(), "boundary-"));
    try {
      const file = join(dir, "client", "x.ts");
      const rule = RULES.client!;
      mkdirSync(dirname(file), { recursive: true });
      const cases = [
        'import { a } from "../shared/auth";',
        'import type { B } from "../devstack/settings";',
        'export * from "../emulators/iothub";',
        'const c = require("../functions/index") as typeof import("../functions/index");',
        'void import("@azure/functions");',
        'import "@azure/data-tables/dist";',
      ];
      for (const line of cases) {
        writeFileSync(file, line);
        expect(violations(file, rule, dir)).not.toEqual([]);
      }
      writeFileSync(file, 'import { a } from "../common/sas";\nimport { Command } from "commander";');
      expect(violations(file, rule, dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The npm packages the sources under `rooms` import (bare specifiers, built-ins left out), sorted. */
function packagesImported(rooms: string[]): string[] {
  const names = rooms
    .flatMap((room) => sourceFiles(join(REPO, room)))
    .flatMap(specifiersOf)
    .filter((spec) => !spec.startsWith(".") && !isBuiltin(spec))
    .map((spec) =>
      spec
        .split("/")
        .slice(0, spec.startsWith("@") ? 2 : 1)
        .join("/"),
    );
  return [...new Set(names)].sort();
}

interface Manifest {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
  license: string;
  engines: Record<string, string>;
}
const manifest = (path: string) => JSON.parse(readFileSync(join(REPO, path), "utf8")) as Manifest;

describe("package manifests (docs/decisions.md §3)", () => {
  const client = manifest("client/package.json");
  const root = manifest("package.json");

  it("the client depends on exactly what client/ and common/ import, @azure/identity as an optional peer", () => {
    const imported = packagesImported(["client", "common"]);
    const optional = ["@azure/identity"];
    // @types/ws: the SDK's declarations name ws's WebSocket, so a TypeScript user needs its types.
    expect(Object.keys(client.dependencies ?? {}).sort()).toEqual(
      [...imported.filter((p) => !optional.includes(p)), "@types/ws"].sort(),
    );
    expect(client.peerDependencies).toEqual({ "@azure/identity": root.dependencies!["@azure/identity"] });
    expect(client.peerDependenciesMeta).toEqual({ "@azure/identity": { optional: true } });
  });

  it("the function app's dependencies cover what the control plane imports, and none is client-only", () => {
    const controlPlane = packagesImported(["functions", "shared", "common"]).filter(
      (p) => p !== "@azure/functions-core", // provided by the Functions worker (deploy/package.ts)
    );
    expect(controlPlane.filter((p) => !(p in root.dependencies!))).toEqual([]);
    const clientOnly = Object.keys(client.dependencies!).filter((p) => !controlPlane.includes(p));
    expect(clientOnly.filter((p) => p in root.dependencies!)).toEqual([]);
  });

  it("a dependency both packages name has the same range in both", () => {
    const shared = Object.keys(client.dependencies!).filter((p) => p in root.dependencies!);
    expect(shared.length).toBeGreaterThan(0);
    for (const p of shared) expect([p, client.dependencies![p]]).toEqual([p, root.dependencies![p]]);
  });

  it("the client's exports and bin name its build of sources that exist; licence and engines match the root's", () => {
    const source = (built: string) =>
      join(REPO, built.replace(/^\.?\/?dist\//, "").replace(/\.d\.ts$|\.js$/, ".ts"));
    for (const [key, target] of Object.entries(client.exports)) {
      if (key === "./package.json") continue;
      if (typeof target === "string") throw new Error(`${key}: untyped export`);
      expect(target.types.replace(/\.d\.ts$/, "")).toBe(target.default.replace(/\.js$/, ""));
      expect([key, existsSync(source(target.default))]).toEqual([key, true]);
    }
    expect(Object.keys(client.bin)).toEqual(["devicestream"]);
    expect(existsSync(source(client.bin.devicestream!))).toBe(true);
    expect(client.license).toBe(root.license);
    expect(client.engines).toEqual(root.engines);
    expect(readFileSync(join(REPO, "client", "LICENSE"), "utf8")).toBe(
      readFileSync(join(REPO, "LICENSE"), "utf8"),
    );
  });
});
