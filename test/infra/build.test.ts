import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { findOnPath, planBuild } from "../../infra/check/build";

test("prefers `az bicep build`, then a standalone `bicep`", () => {
  const found = (names: string[]) => (name: string) => (names.includes(name) ? `/opt/${name}` : undefined);
  expect(planBuild("main.bicep", "/tmp/out", found(["az", "bicep"]))).toEqual({
    command: "/opt/az",
    args: ["bicep", "build", "--file", "main.bicep", "--outdir", "/tmp/out"],
  });
  expect(planBuild("main.bicep", "/tmp/out", found(["bicep"]))).toEqual({
    command: "/opt/bicep",
    args: ["build", "main.bicep", "--outdir", "/tmp/out"],
  });
});

test("says clearly that it skipped when no compiler is installed", () => {
  const plan = planBuild("main.bicep", "/tmp/out", () => undefined);
  expect(plan).toEqual({
    skip: expect.stringMatching(/^infra:build SKIPPED: neither `az` nor `bicep` is on PATH/),
  });
});

test("finds only executables on PATH", () => {
  const dir = mkdtempSync(join(tmpdir(), "path-"));
  try {
    writeFileSync(join(dir, "bicep"), "#!/bin/sh\n");
    writeFileSync(join(dir, "az"), "not executable");
    chmodSync(join(dir, "bicep"), 0o755);
    const path = ["/nonexistent", dir].join(delimiter);
    expect(findOnPath("bicep", path)).toBe(join(dir, "bicep"));
    expect(findOnPath("az", path)).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
