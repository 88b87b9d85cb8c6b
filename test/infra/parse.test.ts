import { join } from "node:path";
import { bicepPaths } from "../../infra/check/files";
import { parseBicep, syntaxErrors } from "../../infra/check/parser";
import { check, REPO, templates } from "./templates";

test("every template under infra/ parses without syntax errors", async () => {
  const files = await templates();
  expect(files.map((f) => f.path)).toContain("infra/app/api.bicep");
  expect(files).toHaveLength(bicepPaths(join(REPO, "infra")).length);
  expect(files.flatMap(syntaxErrors)).toEqual([]);
});

test("a syntax error is reported with file, line and column", async () => {
  const source = [
    "param name string",
    "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {",
    "  name: name",
    "  properties: {",
    "    allowSharedKeyAccess: = false",
    "  }",
    "}",
  ].join("\n");
  const errors = syntaxErrors(await parseBicep("infra/broken.bicep", source));
  expect(errors).toEqual([
    {
      file: "infra/broken.bicep",
      line: 5,
      column: 27,
      rule: "syntax",
      message: expect.stringMatching(/^unexpected/),
    },
  ]);
});

test("a missing token is reported where the parser expected it", async () => {
  const errors = syntaxErrors(await parseBicep("infra/broken.bicep", "var x = concat('a', 'b'\nvar y = 1\n"));
  expect(errors).toEqual([expect.objectContaining({ line: 1, column: 24, message: 'missing ")"' })]);
});

test("a broken template stops the rules and shows only its syntax errors", async () => {
  const files = templates().then(async (all) => [
    ...all,
    await parseBicep("infra/app/broken.bicep", "resource x 'a@b' = {\n  name: 'x'\n"),
  ]);
  const findings = await check(files);
  expect(findings.length).toBeGreaterThan(0);
  expect(findings.every((f) => f.startsWith("infra/app/broken.bicep:") && f.includes("[syntax]"))).toBe(true);
});
