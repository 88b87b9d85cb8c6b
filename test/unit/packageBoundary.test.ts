/**
 * The package boundary (issue 17): the client (`client/`) ships without the control plane, the
 * emulators or the local stack, and `common/` is what both sides share, so it imports neither.
 * A static scan of every import specifier (static, type-only, re-export, require, import(), import
 * types), as TypeScript's own pre-processor reads them.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

/** Every specifier of `file` that breaks `rule`, as "specifier (why)". */
function violations(file: string, rule: { folders: string[]; packages: string[] }, root = REPO): string[] {
  const specifiers = ts
    .preProcessFile(readFileSync(file, "utf8"), true, true)
    .importedFiles.map((f) => f.fileName);
  return specifiers.flatMap((spec) => {
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
