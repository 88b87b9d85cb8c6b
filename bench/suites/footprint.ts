/**
 * Footprint (issue 17), beside floors measured in the same run, on the local stack (this process:
 * control plane on Azurite, Web PubSub and IoT Hub emulators; see tunnel.ts's localStack):
 *
 * - `connect` to the first echoed byte: a fresh `devicestream connect DEVICE echo` process, as
 *   ssh's ProxyCommand runs it, from spawn to the first echoed byte on its stdout, p50 and p99.
 *   Floors: bare `node -e 0` (spawn to exit) and the same setup from a warm in-process client.
 *   Split by the probe's timestamps (bench/footprint/probe.ts) in a second, probed process per run.
 * - Agent RSS: `devicestream device --echo --allow sink=…` in its own process, idle once connected,
 *   and again after 1 GiB went through a `forward` to the sink, each read as it stands and after
 *   forced GCs. Floors: bare Node idle, and Node with azure-iot-device + azure-iot-device-mqtt
 *   loaded and a client connected (bench/footprint/floor.ts), read the same way.
 * Every measured process is a real process of the checkout's dist/; a missed target is reported,
 * never a failure.
 */
import { type ChildProcess, execFile, fork, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { MemoryReply, ProbeMarks } from "../footprint/probe";
import { percentile } from "../stats";
import type { BenchRow, BenchSuite } from "../types";
import { forwarders, localStack, sink, throughput } from "./tunnel";

const DIST = resolve(__dirname, "..", "..");
const BIN = join(DIST, "bin", "devicestream.js");
const PROBE = join(DIST, "bench", "footprint", "probe.js");
const FLOOR = join(DIST, "bench", "footprint", "floor.js");
const MiB = 1024 * 1024;
const DEVICE = "bench-footprint";
const run = promisify(execFile);

type Closer = () => Promise<void>;

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => percentile(sorted(xs), 50);

/** A process forked with the probe preloaded: its memory can be read, with or without GC. */
interface Measured {
  child: ChildProcess;
  memory: (gc: boolean) => Promise<MemoryReply>;
  stop: () => Promise<void>;
}

function forkMeasured(script: string, args: string[], env: NodeJS.ProcessEnv): Measured {
  const child = fork(script, args, {
    execArgv: ["--expose-gc", "-r", PROBE],
    env,
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  return {
    child,
    memory: async (gc) => {
      const reply = new Promise<MemoryReply>((resolve, reject) => {
        const onMessage = (m: { type?: string }) => {
          if (m?.type !== "memory") return;
          child.off("exit", onExit);
          child.off("message", onMessage);
          resolve(m as MemoryReply);
        };
        const onExit = () => reject(new Error(`${script} exited before it reported its memory`));
        child.on("message", onMessage);
        child.once("exit", onExit);
      });
      child.send({ type: "memory", gc });
      return reply;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Resolves when `child` wrote `text` to stderr (which is read throughout, so it never blocks). */
function stderrSays(child: ChildProcess, text: string, what: string): Promise<void> {
  let seen = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (b: Buffer) => {
      seen = (seen + b.toString()).slice(-4096);
      if (seen.includes(text)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`${what} exited (${code}) before it was ready: ${seen}`)));
  });
}

interface Reading {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
}

const inMiB = (m: MemoryReply): Reading => ({
  rss: m.rss / MiB,
  heapTotal: m.heapTotal / MiB,
  heapUsed: m.heapUsed / MiB,
  external: m.external / MiB,
});

/** Memory as it stands and after forced GC, once the process has been left alone for `settleMs`. */
async function readings(p: Measured, settleMs: number): Promise<{ asIs: Reading; gc: Reading }> {
  // A settle period, not a wait for an event: idle means nothing has happened for a while.
  await sleep(settleMs);
  const asIs = inMiB(await p.memory(false));
  return { asIs, gc: inMiB(await p.memory(true)) };
}

/** What V8 holds of an RSS: the JS heap (used of reserved) and external (Buffer) memory. */
const inside = (m: Reading) =>
  `JS heap ${m.heapUsed.toFixed(1)} of ${m.heapTotal.toFixed(1)} MiB, external ${m.external.toFixed(1)} MiB`;

/** One fresh `connect`: spawn to the first echoed byte on its stdout, in ms; epoch of the spawn. */
async function connectOnce(
  env: NodeJS.ProcessEnv,
  probed: boolean,
): Promise<{ ms: number; spawnedAt: number }> {
  const spawnedAt = performance.timeOrigin + performance.now();
  const t = performance.now();
  const child = spawn(
    process.execPath,
    [...(probed ? ["-r", PROBE] : []), BIN, "connect", DEVICE, "echo", "--allow-insecure-relay"],
    { env, stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4096)));
  const exited = once(child, "exit") as Promise<[number | null]>;
  child.stdin.write("x");
  const first = await Promise.race([
    once(child.stdout, "data").then(() => performance.now() - t),
    exited.then(([code]) => {
      throw new Error(`connect exited (${code}) before echoing: ${stderr}`);
    }),
  ]);
  child.stdin.end();
  const [code] = await exited;
  if (code !== 0) throw new Error(`connect exited with ${code}: ${stderr}`);
  return { ms: first, spawnedAt };
}

const wallMs = async (args: string[]) => {
  const t = performance.now();
  await run(process.execPath, args);
  return performance.now() - t;
};

/** The hops of a probed connect, in the order they happen, as [label, from, to]. */
const PHASES: [string, string, string][] = [
  ["process start to the CLI's main module (Node's own start-up)", "spawn", "main"],
  ["modules, config and SAS token, until POST /streams is sent", "main", "postSent"],
  ["POST /streams answered (control plane, direct method, device's relay join)", "postSent", "postAnswered"],
  ["service's relay join (WebSocket upgrade)", "postAnswered", "relayJoined"],
  ["tunnel handshake, channel open and 1 B echoed to stdout", "relayJoined", "firstByte"],
];

function phasesOf(line: ProbeMarks, spawnedAt: number): number[] {
  const at = (name: string) =>
    name === "spawn" ? spawnedAt : line.timeOrigin + (line.marks[name] ?? Number.NaN);
  return PHASES.map(([, from, to]) => at(to) - at(from));
}

const suite: BenchSuite = async ({ quick }) => {
  const closers: Closer[] = [];
  const rows: BenchRow[] = [];
  const group = "footprint";
  const work = await mkdtemp(join(tmpdir(), "bench-footprint-"));
  closers.push(() => rm(work, { recursive: true, force: true }));
  try {
    const stack = await localStack();
    closers.push(stack.close);
    const target = await sink();
    closers.push(target.close);
    const caFile = join(work, "iothub-ca.pem");
    await writeFile(caFile, stack.caPem);
    const settleMs = quick ? 1000 : 3000;
    const env = { ...process.env };
    for (const k of Object.keys(env))
      if (k.startsWith("DEVICESTREAM_") || k.startsWith("IOTHUB_")) delete env[k];

    // ---- memory: floors, then the agent idle, then after bulk through a forward ----
    const bareFloor = forkMeasured(FLOOR, ["bare"], env);
    closers.push(bareFloor.stop);
    await once(bareFloor.child, "message");
    const bare = await readings(bareFloor, settleMs);
    await bareFloor.stop();

    const sdkFloor = forkMeasured(FLOOR, ["device-sdk"], {
      ...env,
      FLOOR_CONNECTION_STRING: await stack.deviceConnectionString("bench-footprint-floor"),
      FLOOR_CA_FILE: caFile,
    });
    closers.push(sdkFloor.stop);
    await once(sdkFloor.child, "message");
    const sdk = await readings(sdkFloor, settleMs);
    await sdkFloor.stop();

    const agent = forkMeasured(
      BIN,
      [
        "device",
        "--echo",
        "--allow",
        `sink=127.0.0.1:${target.port}`,
        "--connection-string",
        await stack.deviceConnectionString(DEVICE),
        "--ca-file",
        caFile,
        "--relay-endpoint",
        stack.relayEndpoint,
        "--relay-hub",
        stack.relayHub,
        "--allow-insecure-relay",
      ],
      env,
    );
    closers.push(agent.stop);
    await stderrSays(agent.child, "serving ", "the agent");
    const idle = await readings(agent, settleMs);

    const total = quick ? 64 * MiB : 1024 * MiB;
    const [forwardPort] = await forwarders(stack.client, DEVICE, ["sink"], closers);
    const seconds = await throughput(forwardPort!, total, target.received);
    const bulk = await readings(agent, settleMs);

    const bulkLabel = `${total / MiB} MiB`;
    const above = (m: Reading, floor: Reading) => `${(m.rss - floor.rss).toFixed(1)} MiB above the floor`;
    rows.push(
      {
        group,
        name: "idle RSS, Node + device SDK (MQTT) connected: the agent's floor",
        value: sdk.asIs.rss,
        unit: "MiB",
        baseline: { name: "bare Node, idle", value: bare.asIs.rss },
        note: `after forced GC ${sdk.gc.rss.toFixed(1)} MiB (bare Node ${bare.gc.rss.toFixed(1)} MiB); ${inside(sdk.gc)}`,
      },
      {
        group,
        name: "agent idle RSS (devicestream device, connected)",
        value: idle.asIs.rss,
        unit: "MiB",
        baseline: { name: "device-SDK floor", value: sdk.asIs.rss },
        target: "<= floor + 15 MiB",
        note: `${above(idle.asIs, sdk.asIs)}; bare Node ${bare.asIs.rss.toFixed(1)} MiB (before issue 17: 90 MiB)`,
      },
      {
        group,
        name: "agent idle RSS, after forced GC",
        value: idle.gc.rss,
        unit: "MiB",
        baseline: { name: "device-SDK floor, after GC", value: sdk.gc.rss },
        target: "<= floor + 15 MiB",
        note: `${above(idle.gc, sdk.gc)}; ${inside(idle.gc)}`,
      },
      {
        group,
        name: `agent RSS after ${bulkLabel} through a forward to a sink`,
        value: bulk.asIs.rss,
        unit: "MiB",
        baseline: { name: "device-SDK floor", value: sdk.asIs.rss },
        target: "<= floor + 30 MiB",
        note: `${above(bulk.asIs, sdk.asIs)}; ${inside(bulk.asIs)}; moved at ${(total / MiB / seconds).toFixed(0)} MiB/s`,
      },
      {
        group,
        name: `agent RSS after ${bulkLabel}, after forced GC`,
        value: bulk.gc.rss,
        unit: "MiB",
        baseline: { name: "device-SDK floor, after GC", value: sdk.gc.rss },
        target: "<= floor + 30 MiB",
        note: `${above(bulk.gc, sdk.gc)}; ${inside(bulk.gc)}`,
      },
    );

    // ---- connect: fresh processes against the agent's echo ----
    const connectEnv = { ...env, DEVICESTREAM_CONNECTION_STRING: stack.keyConnectionString };
    const runs = quick ? 5 : 21;
    const marksFile = join(work, "marks.jsonl");
    await wallMs(["-e", "0"]); // warm the file cache and the stack's paths once
    await connectOnce(connectEnv, false);
    const bareMs: number[] = [];
    const connectMs: number[] = [];
    const warmMs: number[] = [];
    const phases: number[][] = PHASES.map(() => []);
    for (let i = 0; i < runs; i++) {
      // Interleaved, so load on a shared machine shifts every series alike.
      bareMs.push(await wallMs(["-e", "0"]));
      connectMs.push((await connectOnce(connectEnv, false)).ms);
      const probed = await connectOnce({ ...connectEnv, FOOTPRINT_MARKS: marksFile }, true);
      const lines = (await readFile(marksFile, "utf8")).trim().split("\n");
      const split = phasesOf(JSON.parse(lines.at(-1)!) as ProbeMarks, probed.spawnedAt);
      split.forEach((ms, j) => phases[j]!.push(ms));
      warmMs.push(await warmSetup(stack.client));
    }
    const s = sorted(connectMs);
    rows.push(
      {
        group,
        name: `connect: fresh devicestream connect to the first echoed byte, p50 (n=${runs})`,
        value: percentile(s, 50),
        unit: "ms",
        baseline: { name: "bare node -e 0", value: median(bareMs) },
        target: "<= 250 ms",
        note: `same setup from a warm in-process client: p50 ${median(warmMs).toFixed(1)} ms (before issue 17: 500 ms)`,
      },
      {
        group,
        name: `connect: fresh devicestream connect to the first echoed byte, p99 (n=${runs})`,
        value: percentile(s, 99),
        unit: "ms",
        baseline: { name: "bare node -e 0, max", value: sorted(bareMs).at(-1)! },
      },
      ...PHASES.map(([label], j) => ({
        group,
        name: `  connect: ${label}, p50`,
        value: median(phases[j]!),
        unit: "ms",
      })),
    );
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  }
  return rows;
};

/** openStream → 1 B echoed on a new channel → closed, from a client that is already running. */
async function warmSetup(client: Awaited<ReturnType<typeof localStack>>["client"]): Promise<number> {
  const t = performance.now();
  const stream = await client.openStream(DEVICE, "echo");
  try {
    const channel = await stream.openChannel("warm");
    const echoed = once(channel, "data");
    channel.write("x");
    await echoed;
    const ms = performance.now() - t;
    channel.end();
    return ms;
  } finally {
    await stream.close();
  }
}

export default suite;
