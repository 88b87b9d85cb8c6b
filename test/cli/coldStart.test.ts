/**
 * CLI cold start (issue 17): `devicestream --help`, and commands that need no SDK, load none of the
 * commands' dependencies; each command loads its own when it runs. Every heavy package is mocked
 * with a factory that throws, so loading one at start fails the test.
 */
import { PassThrough } from "node:stream";

/** What the commands need and `--help` must not load. */
const HEAVY = [
  "ws",
  "protobufjs",
  "https-proxy-agent",
  "azure-iot-common",
  "azure-iot-device",
  "azure-iot-device-mqtt",
  "azure-iothub",
  "@azure/identity",
  "@azure/core-auth",
];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as the checkout's bin does (with the `dev` extension), in a fresh module registry. */
async function runFresh(args: string[], heavy: readonly string[] = HEAVY): Promise<Result> {
  let runCli!: typeof import("../../client/cli/program").runCli;
  let registerDevCommands!: typeof import("../../devstack/devCommands").registerDevCommands;
  jest.isolateModules(() => {
    for (const name of heavy) {
      jest.doMock(name, () => {
        throw new Error(`${name} loaded`);
      });
    }
    ({ runCli } = jest.requireActual<typeof import("../../client/cli/program")>("../../client/cli/program"));
    ({ registerDevCommands } = jest.requireActual<typeof import("../../devstack/devCommands")>(
      "../../devstack/devCommands",
    ));
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on("data", (b: Buffer) => out.push(b));
  const stderr = new PassThrough().on("data", (b: Buffer) => err.push(b));
  const code = await runCli(args, {
    stdin: new PassThrough(),
    stdout,
    stderr,
    env: {},
    cwd: process.cwd(),
    signal: new AbortController().signal,
    extensions: [registerDevCommands],
  });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

afterEach(() => {
  for (const name of HEAVY) jest.dontMock(name);
});

describe("cold start", () => {
  it("--help loads no command's dependencies", async () => {
    const r = await runFresh(["--help"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/Commands:[\s\S]*device[\s\S]*connect[\s\S]*sas[\s\S]*dev/);
  });

  it("each subcommand's --help loads none either", async () => {
    for (const command of [
      ["device"],
      ["connect"],
      ["forward"],
      ["streams", "list"],
      ["dev", "add-device"],
    ]) {
      const r = await runFresh([...command, "--help"]);
      expect({ command, code: r.code, stderr: r.stderr }).toEqual({ command, code: 0, stderr: "" });
    }
  });

  it("sas mints a token without the SDK's transport", async () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    const r = await runFresh([
      "sas",
      "--connection-string",
      `Endpoint=https://cp.example.net;SharedAccessKeyName=service;SharedAccessKey=${key}`,
    ]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^SharedAccessSignature sr=cp\.example\.net&sig=[^&]+&se=\d+&skn=service\n$/);
  });

  it("a command that needs its SDK does load it (the mocks bite)", async () => {
    const r = await runFresh([
      "endpoints",
      "--connection-string",
      `Endpoint=https://cp.example.net;SharedAccessKeyName=service;SharedAccessKey=${Buffer.alloc(32).toString("base64")}`,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/loaded/);
  });
});
