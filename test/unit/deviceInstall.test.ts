/**
 * The systemd unit a device owner installs and the commands of docs/device-install.md agree with the
 * CLI: each flag is one the commander definition of its command has (a renamed flag fails here, not
 * on a device at boot), the credential file's keys are keys the agent's loader reads, and the unit
 * passes the credential and maps exit codes the way the page says.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import type { Command, Option } from "commander";
import { parseEnvFile } from "../../client/cli/args";
import { AGENT_FILE_SETTINGS, agentSettings, settings } from "../../client/cli/config";
import { EXIT } from "../../client/cli/exitCodes";
import { buildProgram } from "../../client/cli/program";
import {
  DOC_PATH,
  codeBlocks,
  commandsOf,
  devicestreamArgs,
  inlineCode,
  readUnit,
  splitWords,
  unitValues,
} from "../helpers/deviceInstall";

/** The installed package's CLI: no extensions (the checkout's `dev` is not shipped). */
function program(): Command {
  return buildProgram(
    {
      stdin: Readable.from([]),
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      env: {},
      cwd: tmpdir(),
      signal: new AbortController().signal,
    },
    () => undefined,
  );
}

/**
 * Walks `args` the way commander reads them: global options anywhere, the command (and
 * subcommand) by name, each option looked up in the command's definition and, when it takes a
 * value, followed by one. Returns the command's name and what does not match.
 */
function check(args: readonly string[]): { command: string; problems: string[] } {
  const root = program();
  let cmd = root;
  const path: string[] = [];
  const problems: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") break;
    if (arg.startsWith("-")) {
      const eq = arg.indexOf("=");
      const flag = eq > 0 ? arg.slice(0, eq) : arg;
      if (flag === "--help" || flag === "-h") continue;
      const options: readonly Option[] = cmd === root ? root.options : [...cmd.options, ...root.options];
      const option = options.find((o) => o.long === flag || o.short === flag);
      const name = path.join(" ") || "devicestream";
      if (!option) problems.push(`${name} has no option ${flag}`);
      else if (option.required && eq < 0) {
        const value = args[i + 1];
        if (value === undefined || value.startsWith("-")) problems.push(`${name} ${flag} needs a value`);
        i++;
      }
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub) {
      cmd = sub;
      path.push(arg);
    } else if (cmd === root) problems.push(`devicestream has no command ${arg}`);
  }
  if (cmd === root && !args.includes("--help")) problems.push("no command");
  return { command: path.join(" "), problems };
}

const doc = readFileSync(DOC_PATH, "utf8");
const unit = readUnit();
const execStart = () => {
  const values = unitValues(unit, "Service", "ExecStart");
  expect(values).toHaveLength(1);
  return splitWords(values[0]!);
};

/** Every `devicestream` invocation in the page's code blocks (and ExecStart= lines shown in them). */
function docInvocations(): { line: string; args: string[] }[] {
  const found: { line: string; args: string[] }[] = [];
  for (const block of codeBlocks(doc)) {
    for (const line of block.lines) {
      const text = line.replace(/^ExecStart=/, "");
      for (const command of commandsOf(text)) {
        const args = devicestreamArgs(command);
        if (args) found.push({ line, args });
      }
    }
  }
  return found;
}

/** The page's credential file: the block that starts with its path. */
function docCredentialFile(): { path: string; text: string } {
  const block = codeBlocks(doc).find((b) => /^# \/etc\//.test(b.lines[0] ?? ""));
  if (!block)
    throw new Error("docs/device-install.md shows no credential file (a block starting '# /etc/...')");
  return { path: block.lines[0]!.slice(2).trim(), text: block.lines.join("\n") };
}

describe("the flags in the unit and the page are the CLI's", () => {
  it("the unit's ExecStart= runs `devicestream device` with flags the command defines", () => {
    const args = devicestreamArgs(execStart());
    expect(args).toBeDefined();
    expect(check(args!)).toEqual({ command: "device", problems: [] });
  });

  it("every devicestream command in docs/device-install.md's code blocks uses flags its command defines", () => {
    const found = docInvocations();
    expect(found.map((f) => check(f.args).command)).toEqual(expect.arrayContaining(["device", "endpoints"]));
    for (const { line, args } of found)
      expect({ line, ...check(args) }).toMatchObject({ line, problems: [] });
  });

  it("the check itself catches a flag the command does not have, a missing value and an unknown command", () => {
    expect(check(["device", "--config", "x", "--keep-alive", "60"]).problems).toEqual([
      "device has no option --keep-alive",
    ]);
    expect(check(["device", "--allow"]).problems).toEqual(["device --allow needs a value"]);
    expect(check(["agent", "--echo"]).problems).toContain("devicestream has no command agent");
  });

  it("the unit lines the page shows are the shipped unit's, as they are", () => {
    const shown = codeBlocks(doc)
      .filter((b) => b.lang === "ini" && !/^# \//.test(b.lines[0] ?? ""))
      .flatMap((b) => b.lines.filter((l) => /^[A-Z]\w*=/.test(l)));
    expect(shown.length).toBeGreaterThanOrEqual(3);
    const all = Object.values(unit).flatMap((entries) => entries.map((e) => `${e.key}=${e.value}`));
    for (const line of shown) expect(all).toContain(line);
  });
});

describe("the credential file", () => {
  it("every key the page names for it is one the agent's loader reads", () => {
    const { text } = docCredentialFile();
    const keys = [
      ...Object.keys(parseEnvFile(text)),
      ...inlineCode(doc)
        .map((code) => /^([A-Z][A-Z0-9_]*)=/.exec(code)?.[1])
        .filter((k): k is string => k !== undefined),
    ];
    expect(keys).toEqual(
      expect.arrayContaining(["IOTHUB_DEVICE_CONNECTION_STRING", "DEVICESTREAM_RELAY_HUB"]),
    );
    for (const key of keys) expect(AGENT_FILE_SETTINGS).toContain(key);
  });

  it("the page's file, read by the loader as --config, gives the agent its identity and its relay", async () => {
    const { text } = docCredentialFile();
    const dir = await mkdtemp(join(tmpdir(), "device-install-"));
    try {
      const path = join(dir, "agent.env");
      await writeFile(path, text, { mode: 0o600 });
      const agent = agentSettings({}, settings({ env: {}, configFlag: () => path }), {});
      expect(agent).toMatchObject({
        connectionString: parseEnvFile(text).IOTHUB_DEVICE_CONNECTION_STRING,
        relay: { endpoint: "https://mywps.webpubsub.azure.com", hub: "streams", allowInsecure: false },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reaches the agent through LoadCredential= and %d, never its command line or environment", () => {
    const args = execStart();
    const config = args[args.indexOf("--config") + 1] ?? "";
    const name = /^%d\/(.+)$/.exec(config)?.[1];
    expect({ config, name }).toEqual({ config: expect.stringMatching(/^%d\//), name: expect.any(String) });
    expect(unitValues(unit, "Service", "LoadCredential")).toEqual([`${name}:${docCredentialFile().path}`]);
    expect(args).not.toContain("--connection-string");
    const environment = unitValues(unit, "Service", "Environment").join(" ");
    for (const key of AGENT_FILE_SETTINGS) expect(environment).not.toContain(key);
    expect(unitValues(unit, "Service", "EnvironmentFile")).toEqual([]);
    expect(unitValues(unit, "Service", "DynamicUser")).toEqual(["yes"]);
    expect(unitValues(unit, "Service", "User")).toEqual([]);
  });
});

describe("the restart policy follows the agent's exit codes", () => {
  it("restarts on failure (IoT Hub gone: 5, key refused: 3, unexpected: 1) but not on a configuration error (2)", () => {
    expect(unitValues(unit, "Service", "Restart")).toEqual(["on-failure"]);
    const prevent = unitValues(unit, "Service", "RestartPreventExitStatus").flatMap((v) => v.split(/\s+/));
    expect(prevent).toEqual([String(EXIT.usage)]);
    expect(unitValues(unit, "Service", "SuccessExitStatus")).toEqual([]);
  });
});
