/**
 * OpenSSH runs `devicestream connect` as its ProxyCommand and ends it its own way: it closes the
 * pipes and sends SIGHUP, without waiting for it. Each session must still end as a normal close,
 * recorded by the service side with byte counts, and logged by the agent as Normal.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { EXIT } from "../../client/cli/exitCodes";
import { type Stack, startStack } from "../sdk/stack";
import { localTarget } from "../sdk/target";
import { Recorder, withDeadline } from "../helpers/events";
import {
  CLI_JS,
  type Child,
  type Sshd,
  cli,
  ensureBuilt,
  killAll,
  randomFile,
  run,
  sha256,
  startSshd,
  stop,
} from "./support";

jest.setTimeout(120_000);

const DEVICE = "E2E-Proxy-Dev01";
const USER = userInfo().username;
let stack: Stack;
let sshd: Sshd;
let agent: Child;
let dir: string;

beforeAll(async () => {
  await ensureBuilt();
  stack = await startStack();
  stack.wps.lifecycle.on("disconnected", (info) => left.push(info.userId ?? ""));
  dir = await mkdtemp(join(tmpdir(), "e2e-proxy-"));
  sshd = await startSshd();
  const agentArgs = await localTarget(stack).agentArgs(DEVICE);
  agent = cli(["device", ...agentArgs, "--allow", `ssh=127.0.0.1:${sshd.port}`, "--echo"], {
    IOTHUB_DEVICE_CONNECTION_STRING: "",
  });
  await agent.waitFor(/serving echo, ssh/, "the device agent", 30_000);
}, 300_000);

afterAll(async () => {
  try {
    if (agent) await stop(agent, "SIGTERM", 5_000).catch(() => undefined);
  } finally {
    await killAll();
    await stack?.close();
  }
  await sshd?.close();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

const serviceEnv = () => ({ DEVICESTREAM_CONNECTION_STRING: stack.connectionString });
const proxy = `ProxyCommand=${process.execPath} ${CLI_JS} connect %n ssh`;
const sshArgs = (...rest: string[]) => [...sshd.clientOptions, "-o", proxy, ...rest];

/** Relay connections that left, by user id (`<streamId>.<side>`). */
const left = new Recorder<string>();

/**
 * Waits for the agent to log the stream's end and for both of its relay connections to leave: each
 * side's byte report travels before its leave on the same socket, so once the relay's events are
 * handled, the record is final.
 */
async function ended(streamId: string) {
  const [, how] = await agent.waitFor(
    new RegExp(`stream ${streamId} closed: (\\w+)`),
    `the agent to log the end of ${streamId}`,
  );
  await left.waitFor(
    (ids) => ids.filter((id) => id.startsWith(`${streamId}.`)).length === 2,
    `both relay connections of ${streamId} to leave`,
  );
  await stack.wps.eventsSettled();
  return { how, record: await stack.client().getStream(DEVICE, streamId) };
}

/** The id of the next stream named `name` that the agent opens (counting those it has logged). */
function nextOpen(name: string): Promise<string> {
  const line = `stream (\\S+) '${name}' open`;
  const before = agent.stderr().match(new RegExp(line, "g"))?.length ?? 0;
  const pattern = new RegExp(`(?:[\\s\\S]*?${line}){${before}}[\\s\\S]*?${line}`);
  return agent.waitFor(pattern, `a new '${name}' stream`).then((m) => m.at(-1)!);
}

function expectNormalClose({ how, record }: Awaited<ReturnType<typeof ended>>) {
  expect(how).toBe("Normal");
  expect(record).toMatchObject({ state: "Closed", closedBy: "service" });
  expect(record.closeReason ?? "").not.toMatch(/1006/);
  expect(record.bytesFromService).toBeGreaterThan(0);
  expect(record.bytesFromDevice).toBeGreaterThan(0);
}

describe("connect as OpenSSH's ProxyCommand", () => {
  it("an ssh command ends as a normal close with byte counts", async () => {
    const opened = nextOpen("ssh");
    const { stdout } = await run("ssh", sshArgs(`${USER}@${DEVICE}`, "echo proxied-$((6*7))"), {
      env: { ...process.env, ...serviceEnv() },
    });
    expect(stdout).toContain("proxied-42");
    expectNormalClose(await ended(await opened));
  });

  it("an scp upload ends as a normal close with byte counts", async () => {
    const source = join(dir, "scp-src.bin");
    const copy = join(dir, "scp-copy.bin");
    const expected = await randomFile(dir, "scp-src.bin", 4 * 1024 * 1024);
    const opened = nextOpen("ssh");
    await run("scp", ["-q", ...sshArgs(source, `${USER}@${DEVICE}:${copy}`)], {
      env: { ...process.env, ...serviceEnv() },
    });
    expect(sha256(await readFile(copy))).toBe(expected);
    const end = await ended(await opened);
    expectNormalClose(end);
    expect(end.record.bytesFromService).toBeGreaterThan(4 * 1024 * 1024);
  });

  it("SIGHUP ends connect with exit 0 and a normal close", async () => {
    const opened = nextOpen("echo");
    const c = cli(["connect", DEVICE, "echo"], serviceEnv());
    c.proc.stdin!.write("before-hangup\n");
    await c.waitFor(/before-hangup/, "the echo");
    c.proc.kill("SIGHUP");
    expect((await withDeadline(c.exit, 30_000, "connect to exit")).code).toBe(EXIT.ok);
    expectNormalClose(await ended(await opened));
  });

  it("a broken stdout pipe (the reader gone) is an end, not an error", async () => {
    const opened = nextOpen("echo");
    const c = cli(["connect", DEVICE, "echo"], serviceEnv());
    c.proc.stdin!.write("first\n");
    await c.waitFor(/first/, "the echo");
    // The reader goes away; the echo of the next line then meets a closed pipe (EPIPE).
    c.proc.stdout!.destroy();
    c.proc.stdin!.write("second\n");
    c.proc.stdin!.end();
    expect((await withDeadline(c.exit, 30_000, "connect to exit")).code).toBe(EXIT.ok);
    expect(c.stderr()).not.toMatch(/EPIPE|Error/);
    expectNormalClose(await ended(await opened));
  });
});
