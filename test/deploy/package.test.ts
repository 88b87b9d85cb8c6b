// `npm run package`: what the artifact holds, and that it starts on its own, registering exactly
// the route table, when loaded the way the Functions worker loads it.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { FunctionSummary } from "../../devstack/functionsCore";
import {
  CLIENT_ONLY_PACKAGES,
  OPTIONAL_REQUIRES,
  PackageError,
  WORKER_PROVIDED,
  buildArtifact,
  forbiddenInputs,
  packageOf,
} from "../../deploy/package";
import { createRouteTable } from "../../shared/routes";
import { REPO, run, unpackedArtifact, type Unpacked } from "./artifact";

jest.setTimeout(60_000);

/** The package a simulated `azd deploy` held before this artifact existed (issue 14). */
const OLD_PACKAGE_BYTES = 372 * 1024 * 1024;

const manifest = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
};

let unpacked: Unpacked;
beforeAll(async () => {
  unpacked = await unpackedArtifact();
});
afterAll(() => unpacked?.cleanup());

describe("the artifact", () => {
  test("holds host.json, package.json, the bundle, its licence and third-party notices, nothing else", () => {
    expect(unpacked.artifact.files).toEqual([
      "LICENSE",
      "THIRD-PARTY-NOTICES.txt",
      "host.json",
      "index.js",
      "package.json",
    ]);
    expect(readFileSync(join(unpacked.dir, "host.json"), "utf8")).toBe(
      readFileSync(join(REPO, "host.json"), "utf8"),
    );
    const pkg = JSON.parse(readFileSync(join(unpacked.dir, "package.json"), "utf8"));
    expect(pkg).toMatchObject({ main: "index.js", dependencies: {} });
    expect(pkg.devDependencies).toBeUndefined();
    expect(pkg.scripts).toBeUndefined();
    expect(existsSync(join(unpacked.dir, "node_modules"))).toBe(false);
  });

  test("is under 15% of the 372 MB package it replaces", () => {
    console.log(
      `artifact: ${unpacked.artifact.files.length} files, ${unpacked.artifact.bytes} bytes unzipped, ${unpacked.zipBytes} zipped`,
    );
    expect(unpacked.artifact.bytes).toBeLessThan(0.15 * OLD_PACKAGE_BYTES);
  });

  test("bundles only the control plane: functions/ and shared/, no client side, no dev or device/CLI-only package", () => {
    const { sources, packages } = unpacked.artifact;
    expect(sources).toContain("functions/index.ts");
    expect(sources.filter((s) => !/^(functions|shared|common)\//.test(s))).toEqual([]);
    const forbidden = [...CLIENT_ONLY_PACKAGES, ...Object.keys(manifest.devDependencies)];
    expect(packages.filter((p) => forbidden.includes(p))).toEqual([]);
    expect(packages).toEqual(expect.arrayContaining(["@azure/functions", "@azure/data-tables", "zod"]));
  });

  test("leaves unbundled only what the worker provides and optional peers loaded in try/catch", () => {
    expect(unpacked.artifact.unbundled.filter((m) => !OPTIONAL_REQUIRES.includes(m))).toEqual(
      WORKER_PROVIDED,
    );
  });
});

describe("the artifact starts, loaded as the Functions worker loads it", () => {
  let report: {
    functions: FunctionSummary[];
    loadMs: number;
    outside: string[];
    unresolved: string[];
  };
  beforeAll(async () => {
    // A child process with the unpacked artifact as its working directory and no NODE_PATH: the
    // only node_modules it could reach are the ones above the temp directory, and `outside` lists
    // every file it loads from anywhere but the artifact.
    const env = { ...process.env };
    delete env.NODE_PATH;
    const { stdout } = await run(process.execPath, [unpacked.harness, unpacked.dir], {
      cwd: unpacked.dir,
      env,
    });
    report = JSON.parse(stdout);
  });

  test("loads nothing from outside its own directory", () => {
    expect(report.outside).toEqual([]);
    expect(report.unresolved.filter((m) => !OPTIONAL_REQUIRES.includes(m))).toEqual([]);
    console.log(`artifact: entry point loaded and registered in ${report.loadMs.toFixed(0)} ms`);
  });

  test("registers exactly the route table: names, methods, routes, auth levels, the timer schedule", () => {
    const table = createRouteTable(() => Promise.reject(new Error("no services needed to list routes")));
    const expected: FunctionSummary[] = [
      ...table.http.map((r) => ({
        name: r.name,
        trigger: "httpTrigger",
        authLevel: "anonymous",
        methods: [...r.methods],
        route: r.route,
      })),
      ...table.timers.map((t) => ({ name: t.name, trigger: "timerTrigger", schedule: t.schedule })),
    ];
    expect(report.functions).toEqual(expected);
  });
});

describe("packing refuses what the control plane must not ship", () => {
  test("names the package of a node_modules path", () => {
    expect(packageOf("node_modules/zod/v4/index.js")).toBe("zod");
    expect(packageOf("node_modules/@azure/identity/dist/index.js")).toBe("@azure/identity");
    expect(packageOf("node_modules/a/node_modules/@s/b/x.js")).toBe("@s/b");
    expect(packageOf("shared/routes.ts")).toBeUndefined();
  });

  test("client sources, device/CLI-only packages and devDependencies are forbidden", () => {
    const inputs = [
      "functions/index.ts",
      "shared/routes.ts",
      "common/codec.ts",
      "client/sdk/index.ts",
      "node_modules/azure-iot-device/dist/index.js",
      "node_modules/commander/index.js",
      "node_modules/jest/build/index.js",
      "node_modules/zod/index.js",
    ];
    expect(forbiddenInputs(inputs, ["jest"])).toEqual([
      "client/sdk/index.ts",
      "node_modules/azure-iot-device/dist/index.js",
      "node_modules/commander/index.js",
      "node_modules/jest/build/index.js",
    ]);
  });

  test("a function app that imports the client side fails to package, with the file named", async () => {
    const fixture = await mkdtemp(join(tmpdir(), "package-fixture-"));
    try {
      const write = async (path: string, text: string) => {
        await mkdir(dirname(join(fixture, path)), { recursive: true });
        await writeFile(join(fixture, path), text);
      };
      await write("package.json", JSON.stringify({ name: "fixture", version: "1.0.0", devDependencies: {} }));
      await write("host.json", "{}");
      await write("client/sdk.ts", "export const sdk = 1;\n");
      await write("functions/index.ts", 'import { sdk } from "../client/sdk";\nconsole.log(sdk);\n');
      const outDir = join(fixture, "out");
      const attempt = buildArtifact(fixture, outDir);
      await expect(attempt).rejects.toThrow(PackageError);
      await expect(attempt).rejects.toThrow("client/sdk.ts");
      expect(existsSync(outDir)).toBe(false);
    } finally {
      await rm(fixture, { recursive: true, force: true });
    }
  });
});
