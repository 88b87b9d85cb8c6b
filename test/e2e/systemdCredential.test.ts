/**
 * The agent started the way client/systemd/devicestream-agent.service starts it (docs/device-install.md):
 * the unit's own ExecStart= arguments, `%d` standing for a credentials directory laid out as
 * systemd's LoadCredential= makes it (0500, holding the 0400 file), and an environment as small as
 * systemd's. It serves a stream through the in-process local stack, and its device connection string
 * is neither in its command line (what `ps` shows) nor in its environment (/proc/PID/environ).
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT } from "../../client/cli/exitCodes";
import { devicestreamArgs, readUnit, splitWords, unitValues } from "../helpers/deviceInstall";
import { type Stack, startStack } from "../sdk/stack";
import { CLI_JS, type Child, cli, ensureBuilt, killAll, start, stop } from "./support";

jest.setTimeout(120_000);

const DEVICE = "E2E-Systemd-Dev";
let stack: Stack | undefined;
let credentials: string;
let connectionString: string;
let agent: Child;

/** The unit's ExecStart= after the program, `%d` replaced by the credentials directory. */
function unitArgs(credentialsDir: string): string[] {
  const [execStart] = unitValues(readUnit(), "Service", "ExecStart");
  const args = devicestreamArgs(splitWords(execStart ?? ""));
  if (!args) throw new Error(`ExecStart= does not run devicestream: ${execStart}`);
  return args.map((a) => a.replaceAll("%d", credentialsDir));
}

beforeAll(async () => {
  await ensureBuilt();
  stack = await startStack();
  connectionString = await stack.hub.createDevice(DEVICE);
  credentials = await mkdtemp(join(tmpdir(), "e2e-credentials-"));
  const file = join(credentials, "agent.env");
  await writeFile(
    file,
    [
      `IOTHUB_DEVICE_CONNECTION_STRING=${connectionString}`,
      `IOTHUB_DEVICE_CA_FILE=${stack.hub.caPath}`,
      `DEVICESTREAM_RELAY_ENDPOINT=${stack.relayEndpoint}`,
      `DEVICESTREAM_RELAY_HUB=${stack.relayHub}`,
      // The local relay is plain ws://; a device reaching Azure never needs this line.
      "DEVICESTREAM_ALLOW_INSECURE_RELAY=1",
      "",
    ].join("\n"),
  );
  await chmod(file, 0o400);
  await chmod(credentials, 0o500);
}, 300_000);

afterAll(async () => {
  await killAll();
  await stack?.close();
  if (credentials) {
    await chmod(credentials, 0o700);
    await rm(credentials, { recursive: true, force: true });
  }
}, 60_000);

it("serves a stream with its credential from a 0500 directory holding a 0400 file, as LoadCredential= gives it", async () => {
  expect(((await stat(credentials)).mode & 0o777).toString(8)).toBe("500");
  expect(((await stat(join(credentials, "agent.env"))).mode & 0o777).toString(8)).toBe("400");
  const args = unitArgs(credentials);
  expect(args).toEqual(expect.arrayContaining(["device", "--config", join(credentials, "agent.env")]));
  // --echo adds a stream the test can use without an sshd behind the unit's own --allow ssh=...
  agent = start(process.execPath, [CLI_JS, ...args, "--echo"], {
    cwd: tmpdir(),
    // What systemd gives a service: no inherited IOTHUB_* or DEVICESTREAM_* variable to lean on.
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CREDENTIALS_DIRECTORY: credentials },
  });
  await agent.waitFor(/serving [^;]*\becho\b[^;]*; relay /, "the agent");

  const echo = cli(["echo", DEVICE, "--bytes", "256k"], {
    DEVICESTREAM_CONNECTION_STRING: stack!.connectionString,
    DEVICESTREAM_CONFIG: "",
  });
  expect({ exit: (await echo.exit).code, stderr: echo.stderr() }).toEqual({ exit: EXIT.ok, stderr: "" });
  expect(echo.stdout()).toMatch(/verified: 262144 bytes echoed/);
  await agent.waitFor(/closed: Normal/, "the agent to log the stream's end");
});

it("its connection string is in neither its command line (ps) nor its environment (/proc/PID/environ)", async () => {
  const pid = agent.proc.pid!;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
  const environ = await readFile(`/proc/${pid}/environ`, "utf8");
  // The right process: its command line names the credentials file.
  expect(cmdline.split("\0")).toContain(join(credentials, "agent.env"));
  const key = /SharedAccessKey=([^;]+)/.exec(connectionString)![1]!;
  for (const [where, text] of [
    ["argv", cmdline],
    ["environment", environ],
  ] as const) {
    expect({ where, hasConnectionString: text.includes(connectionString) }).toEqual({
      where,
      hasConnectionString: false,
    });
    expect({ where, hasKey: text.includes(key) }).toEqual({ where, hasKey: false });
  }
});

it("a stop (SIGTERM, as systemctl stop sends) ends it with 0, which Restart=on-failure does not restart", async () => {
  const exit = await stop(agent, "SIGTERM", 30_000);
  expect({ ...exit, stderr: agent.stderr() }).toMatchObject({ code: EXIT.ok, signal: null });
});
