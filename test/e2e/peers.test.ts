/**
 * End to end with real peers nobody here wrote: OpenSSH (ssh, scp, sshd), curl, and the lifecycle
 * seen from real processes. The control plane, relay and IoT Hub run in process (test/sdk/stack), or
 * are a deployment with `npm run test:live` (test/sdk/target.ts); the device agent and every
 * service-side command are the built CLI, as separate processes on this machine.
 */
import { Agent as HttpAgent, createServer, get as httpGet, type Server } from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { EXIT } from "../../client/cli/exitCodes";
import { withDeadline } from "../helpers/events";
import { type StreamsTarget, scaled, startTarget } from "../sdk/target";
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
  start,
  startSshd,
  stop,
} from "./support";

jest.setTimeout(scaled(120_000));

// Not useTarget(): the agents must stop (and say goodbye) while the stack is still up.
let theStack: StreamsTarget | undefined;
const stack = (): StreamsTarget => theStack!;
/** The device IDs, behind the live run's prefix (set once the target is up). */
let DEVICE = "";
let SILENT = "";
let DOOMED = "";
const USER = userInfo().username;

let sshd: Sshd;
let files: Server;
let filesPort: number;
let agent: Child;
let dir: string;
const hashes = new Map<string, string>();

function serviceEnv(): NodeJS.ProcessEnv {
  return stack().serviceEnv;
}

/** The agent for `deviceId`: `--connection-string`, `--ca-file` (local), `--relay-endpoint` + `--relay-hub`, ws:// only locally. */
async function startAgent(deviceId: string, maps: string[]): Promise<Child> {
  return cli(
    // The agent's default limits: what users run (docs/cli.md says why they suffice).
    ["device", ...(await stack().agentArgs(deviceId)), "--verbose", ...maps],
    {
      IOTHUB_DEVICE_CONNECTION_STRING: "",
    },
  );
}

const proxy = `ProxyCommand=${process.execPath} ${CLI_JS} connect %n ssh`;
const sshArgs = (...rest: string[]) => [...sshd.clientOptions, "-o", proxy, ...rest];

beforeAll(async () => {
  await ensureBuilt();
  theStack = await startTarget();
  DEVICE = theStack.deviceId("E2E-Peer-Dev01");
  SILENT = theStack.deviceId("E2E-Silent-Dev");
  DOOMED = theStack.deviceId("E2E-Doomed-Dev");
  dir = await mkdtemp(join(tmpdir(), "e2e-peers-"));
  sshd = await startSshd();
  // The device-side web server: 8 random 4 MB files.
  for (let i = 0; i < 8; i++) hashes.set(`f${i}.bin`, await randomFile(dir, `f${i}.bin`, 4 * 1024 * 1024));
  files = createServer((req, res) => {
    if (req.url?.startsWith("/small/")) return void res.writeHead(200).end(`ok ${req.url.slice(7)}`);
    const name = (req.url ?? "/").slice(1);
    if (!hashes.has(name)) return void res.writeHead(404).end();
    void readFile(join(dir, name)).then((body) =>
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(body),
    );
  });
  await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
  filesPort = (files.address() as AddressInfo).port;
  agent = await startAgent(DEVICE, [
    "--allow",
    `ssh=127.0.0.1:${sshd.port}`,
    "--allow",
    `files=127.0.0.1:${filesPort}`,
  ]);
  await agent.waitFor(/serving ssh, files/, "the device agent", scaled(30_000));
}, scaled(300_000));

afterAll(async () => {
  try {
    // Stopped by the last test; here only if a test failed before it.
    if (agent) await stop(agent, "SIGTERM", 5_000).catch(() => undefined);
  } finally {
    await killAll();
    await theStack?.close();
  }
  await sshd?.close();
  files?.closeAllConnections();
  await new Promise<void>((resolve) => (files ? files.close(() => resolve()) : resolve()));
  await rm(dir, { recursive: true, force: true });
}, scaled(60_000));

describe("OpenSSH through devicestream connect", () => {
  it("ssh to a mixed-case device ID runs a command (ProxyCommand with %n)", async () => {
    const started = Date.now();
    const { stdout } = await run("ssh", sshArgs(`${USER}@${DEVICE}`, "echo hello-$((6*7)) from $(whoami)"), {
      env: { ...process.env, ...serviceEnv() },
      timeout: scaled(60_000),
    });
    expect(stdout.trim()).toBe(`hello-42 from ${USER}`);
    console.log(`e2e: ssh command round trip ${Date.now() - started} ms`);
  });

  it("scp of 32 MB is sha256-identical", async () => {
    const source = join(dir, "scp-src.bin");
    const copy = join(dir, "scp-copy.bin");
    const expected = await randomFile(dir, "scp-src.bin", 32 * 1024 * 1024);
    const started = Date.now();
    await run("scp", ["-q", ...sshArgs(source, `${USER}@${DEVICE}:${copy}`)], {
      env: { ...process.env, ...serviceEnv() },
      timeout: scaled(120_000),
    });
    const seconds = (Date.now() - started) / 1000;
    expect(sha256(await readFile(copy))).toBe(expected);
    console.log(`e2e: scp 32 MB in ${seconds.toFixed(2)} s (${(32 / seconds).toFixed(1)} MB/s)`);
  });

  it("two simultaneous SSH sessions to the same device both work", async () => {
    const sessions = [1, 2].map((n) =>
      start(
        "ssh",
        sshArgs(`${USER}@${DEVICE}`, `echo session-${n}-up; read line; echo session-${n}-got-$line`),
        {
          env: { ...process.env, ...serviceEnv() },
        },
      ),
    );
    // Both are live at once before either gets its input.
    await Promise.all(
      sessions.map((s, i) => s.waitFor(new RegExp(`session-${i + 1}-up`), `session ${i + 1}`)),
    );
    sessions.forEach((s, i) => s.proc.stdin!.end(`x${i + 1}\n`));
    const exits = await withDeadline(
      Promise.all(sessions.map((s) => s.exit)),
      scaled(30_000),
      "both sessions",
    );
    expect(exits.map((e) => e.code)).toEqual([0, 0]);
    expect(sessions[0]!.stdout()).toContain("session-1-got-x1");
    expect(sessions[1]!.stdout()).toContain("session-2-got-x2");
  });

  it("devicestream streams close ends a live SSH session", async () => {
    const session = start("ssh", sshArgs(`${USER}@${DEVICE}`, "echo live; cat"), {
      env: { ...process.env, ...serviceEnv() },
    });
    await session.waitFor(/live/, "the SSH session");
    const list = cli(["streams", "list", DEVICE, "--state", "Established", "--json"], serviceEnv());
    expect((await list.exit).code).toBe(EXIT.ok);
    const live = (JSON.parse(list.stdout()) as { streamId: string; name: string }[]).filter(
      (s) => s.name === "ssh",
    );
    expect(live).toHaveLength(1);
    const close = cli(["streams", "close", DEVICE, live[0]!.streamId], serviceEnv());
    expect((await close.exit).code).toBe(EXIT.ok);
    expect(close.stdout()).toContain(`closed ${live[0]!.streamId}`);
    // stdin stays open: only the close can end the session.
    const exit = await withDeadline(session.exit, scaled(30_000), "ssh to end after streams close");
    expect(exit.code).not.toBe(0);
    const record = await stack().client().getStream(DEVICE, live[0]!.streamId);
    expect(record).toMatchObject({ state: "Closed", closeCode: "ClosedByApi" });
  });
});

describe("HTTP through devicestream forward", () => {
  it("64 parallel curl downloads of 4 MB are all sha256-identical", async () => {
    const fwd = cli(["forward", DEVICE, "files", "--listen", "0"], serviceEnv());
    const [, port] = await fwd.waitFor(/forwarding 127\.0\.0\.1:(\d+) ->/, "forward to listen");
    const names = Array.from({ length: 64 }, (_, i) => `f${i % 8}.bin`);
    const started = Date.now();
    const downloads = names.map((name, i) =>
      run("curl", ["-sS", "--fail", "-o", join(dir, `dl-${i}`), `http://127.0.0.1:${port}/${name}`], {
        timeout: scaled(90_000),
      }),
    );
    await withDeadline(Promise.all(downloads), scaled(100_000), "64 downloads");
    const seconds = (Date.now() - started) / 1000;
    for (const [i, name] of names.entries()) {
      expect(sha256(await readFile(join(dir, `dl-${i}`)))).toBe(hashes.get(name));
    }
    console.log(`e2e: 64 x 4 MB via curl in ${seconds.toFixed(2)} s (${(256 / seconds).toFixed(1)} MB/s)`);
    expect((await stop(fwd, "SIGINT")).code).toBe(EXIT.ok);
  });

  it("a 32-connection keep-alive pool makes 1,000 requests with none reset", async () => {
    const fwd = cli(["forward", DEVICE, "files", "--listen", "0"], serviceEnv());
    const [, port] = await fwd.waitFor(/forwarding 127\.0\.0\.1:(\d+) ->/, "forward to listen");
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 32 });
    const sockets = new Set<unknown>();
    agent.on("free", (socket) => sockets.add(socket));
    const get = (i: number) =>
      new Promise<string>((resolve, reject) => {
        httpGet({ host: "127.0.0.1", port: Number(port), path: `/small/${i}`, agent }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (t: string) => (body += t));
          res.on("end", () => resolve(body));
          res.on("error", reject);
        }).on("error", reject);
      });
    const bodies = await withDeadline(
      Promise.all(Array.from({ length: 1000 }, (_, i) => get(i))),
      scaled(100_000),
      "1,000 requests",
    );
    expect(bodies).toEqual(Array.from({ length: 1000 }, (_, i) => `ok ${i}`));
    // The pool really held 32 connections open at once (each a channel of the shared stream).
    expect(sockets.size).toBe(32);
    agent.destroy();
    expect(fwd.stderr()).not.toMatch(/reset|ChannelLimit|at capacity/);
    expect((await stop(fwd, "SIGINT")).code).toBe(EXIT.ok);
  });
});

describe("lifecycle with real processes", () => {
  it("a device that rejects: exit code 6 and the device's reason", async () => {
    const r = cli(["connect", DEVICE, "telnet"], serviceEnv());
    r.proc.stdin!.end();
    expect((await r.exit).code).toBe(EXIT.rejected);
    expect(r.stderr()).toMatch(/stream name 'telnet' is not served here/);
  });

  it("echo to a device that rejects it exits 6 by itself, with nothing left open", async () => {
    // stdin stays open: it must not be what keeps the command, or lets it go.
    const r = cli(["echo", DEVICE, "--bytes", "1k", "--verbose"], serviceEnv());
    const exit = await withDeadline(r.exit, 30_000, "echo to exit");
    expect({ ...exit, stderr: r.stderr() }).toMatchObject({ code: EXIT.rejected, signal: null });
    expect(r.stderr()).toMatch(/stream name 'echo' is not served here/);
    expect(r.stderr()).toMatch(/^devicestream: debug: nothing left open$/m);
  });

  it("a device that never answers times out, and the record says TimedOut", async () => {
    const device = await stack().device(SILENT);
    device.onDeviceMethod("deviceStream", () => undefined); // receives, never responds
    const error = await stack()
      .client()
      .openStream(SILENT, "ssh", { handshakeTimeoutInMs: 5000 })
      .then(
        () => undefined,
        (e: unknown) => e as { code?: string },
      );
    expect(error?.code).toBe("DeviceTimeout");
    const records = [];
    for await (const s of stack().client().listStreams(SILENT)) records.push(s);
    expect(records.map((r) => r.state)).toEqual(["TimedOut"]);
  });

  it("killing the device agent mid-transfer ends the service side; the record says Closed with a reason", async () => {
    const doomed = await startAgent(DOOMED, ["--echo"]);
    await doomed.waitFor(/serving echo/, "the doomed agent");
    // connect to the echo: bytes written come back, so the transfer is under way when the agent dies.
    const transfer = cli(["connect", DOOMED, "echo"], serviceEnv());
    const [, streamId] = await doomed.waitFor(/stream (\S+) 'echo' open/, "the stream to open");
    transfer.proc.stdin!.on("error", () => undefined); // EPIPE once the CLI has exited
    transfer.proc.stdin!.write("mid-transfer-marker\n");
    await transfer.waitFor(/mid-transfer-marker/, "the echo to flow");
    transfer.proc.stdin!.write(Buffer.alloc(1024 * 1024, 7)); // more in flight, stdin left open
    await stop(doomed, "SIGKILL");
    const exit = await withDeadline(transfer.exit, scaled(60_000), "the service side to end").catch(
      async (e: Error) => {
        const record = await stack().client().getStream(DOOMED, streamId!);
        throw new Error(`${e.message}; record ${JSON.stringify(record)}; cli: ${transfer.stderr()}`);
      },
    );
    expect(exit.code).toBe(EXIT.streamFailed);
    expect(transfer.stderr()).toMatch(/devicestream: /);
    const record = await stack().client().getStream(DOOMED, streamId!);
    expect(record.state).toBe("Closed");
    expect(record.closeCode).toBeDefined();
    expect(record.closeReason).toEqual(expect.any(String));
    console.log(`e2e: killed agent -> record ${record.closeCode}: ${record.closeReason}`);
  });
});

describe("stopping the agent", () => {
  // Last: every SSH session above went through this agent, and one is live when it is stopped.
  it("SIGTERM ends a live SSH session with GoingAway and the agent exits 0 by itself, with nothing left open", async () => {
    const session = start("ssh", sshArgs(`${USER}@${DEVICE}`, "echo live; cat"), {
      env: { ...process.env, ...serviceEnv() },
    });
    await session.waitFor(/live/, "the SSH session");
    const started = Date.now();
    // Promptly: within systemd's TimeoutStopSec=15 (client/systemd/devicestream-agent.service).
    const exit = await stop(agent, "SIGTERM", 15_000);
    console.log(`e2e: agent stopped ${Date.now() - started} ms after SIGTERM`);
    expect({ ...exit, stderr: agent.stderr() }).toMatchObject({ code: EXIT.ok, signal: null });
    expect(agent.stderr()).toMatch(/stream \S+ closed: GoingAway/);
    expect(agent.stderr()).toMatch(/^devicestream: debug: nothing left open$/m);
    expect((await withDeadline(session.exit, 30_000, "ssh to end")).code).not.toBe(0);
    expect(session.stderr()).toMatch(/GoingAway/);
  });
});
