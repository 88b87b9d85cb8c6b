/**
 * Every shell command in the README is either run by a test or by CI (the list below names where,
 * and that file must contain the evidence), or sits in a block marked `<!-- azure-only -->`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./support";

interface Coverage {
  command: RegExp;
  /** Where it runs, and a string that file must contain to prove it. */
  by: { file: string; evidence: string }[];
}

const COVERAGE: Coverage[] = [
  {
    command: /^npm install( && npm start)?$/,
    by: [{ file: ".ci/run", evidence: "npm ci" }],
  },
  {
    command: /^npm (start|install && npm start)$/,
    by: [
      // npm start = npm run build && node dist/devstack/start.js; the test builds, then runs start.js.
      { file: "test/e2e/quickstart.test.ts", evidence: '"dist/devstack/start.js"' },
      { file: "test/e2e/support.ts", evidence: '"tsconfig.build.json"' },
    ],
  },
  { command: /^npm test$/, by: [{ file: ".ci/run", evidence: "npm test" }] },
  {
    command: /^npm run pack$/,
    by: [
      { file: ".ci/run", evidence: "npm run pack" },
      // The client's half of it, then the install below, in npm test.
      { file: "test/e2e/install.test.ts", evidence: "packClient(REPO" },
    ],
  },
  {
    // The test installs as docs/device-install.md does (`--global` into a prefix of its own, which
    // is what `-g` does into the default prefix) and as a backend's project does (`npm install`).
    command: /^(sudo )?npm install (-g )?\.\/device-streams-client-0\.1\.0\.tgz$/,
    by: [
      { file: "test/e2e/install.test.ts", evidence: "docInstallCommand()" },
      { file: "test/e2e/install.test.ts", evidence: "installTarballs(backend" },
    ],
  },
  {
    command: /^node dist\/bin\/devicestream\.js (echo|forward) Demo-Device-01 /,
    by: [{ file: "test/e2e/quickstart.test.ts", evidence: "Demo-Device-01 --bytes 16M" }],
  },
  {
    command:
      /^ssh -o ProxyCommand='node dist\/bin\/devicestream\.js connect %n ssh' "\$USER"@Demo-Device-01$/,
    by: [{ file: "test/e2e/quickstart.test.ts", evidence: "connect %n ssh" }],
  },
  {
    command:
      /^node dist\/bin\/devicestream\.js (dev add-device My-Device|device --config \.devstack\/agent-My-Device\.env --echo)$/,
    by: [{ file: "test/e2e/quickstart.test.ts", evidence: "agent-My-Device.env --echo" }],
  },
];

/** Shell blocks of a markdown file: their commands, and whether an azure-only marker precedes them. */
export function shellBlocks(markdown: string): { azureOnly: boolean; commands: string[] }[] {
  const blocks: { azureOnly: boolean; commands: string[] }[] = [];
  const re = /(?:^|\n)((?:<!-- azure-only -->\s*\n)?)```(?:sh|bash|shell)\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(re)) {
    const commands = m[2]!
      .split("\n")
      .map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    blocks.push({ azureOnly: m[1] !== "", commands });
  }
  return blocks;
}

describe("README commands", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const blocks = shellBlocks(readme);

  it("finds the shell blocks, including an azure-only one", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    expect(blocks.some((b) => b.azureOnly)).toBe(true);
  });

  const local = blocks.filter((b) => !b.azureOnly).flatMap((b) => b.commands);
  it.each(local)("%s is covered by a test or CI", (command) => {
    const entry = COVERAGE.find((c) => c.command.test(command));
    expect({ command, covered: entry !== undefined }).toEqual({ command, covered: true });
    for (const { file, evidence } of entry!.by) {
      expect(readFileSync(join(REPO, file), "utf8")).toContain(evidence);
    }
  });

  it("the extractor tells marked from unmarked blocks", () => {
    const sample = "a\n```sh\nnpm test # run\n```\n<!-- azure-only -->\n\n```sh\n# c\naz login\n```\n";
    expect(shellBlocks(sample)).toEqual([
      { azureOnly: false, commands: ["npm test"] },
      { azureOnly: true, commands: ["az login"] },
    ]);
  });
});
