/**
 * Web PubSub emulator: relay throughput against a bare `ws` relay, and memory per connection.
 *
 * Both relays run in a child process (this file, forked in a child mode) so the figures are the
 * relay's alone; sender and receiver live in this process. The sender keeps at most WINDOW
 * messages in flight, released as the receiver gets them (an in-process side channel), so the
 * emulator's queue stays far below the SlowClient limit and no message is lost.
 */
import { fork, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { decodeDownstream, encodeUpstream, PROTOBUF_SUBPROTOCOL } from "../../client/webpubsub/codec";
import { startWebPubSubEmulator } from "../../emulators/webpubsub";
import type { BenchOptions, BenchRow, BenchSuite } from "../types";

const MESSAGE_BYTES = 64 * 1024;
/** 32 x 64 KiB = 2 MiB in flight at most: half the emulator's 4 MiB SlowClient limit. */
const WINDOW = 32;
const HUB = "bench";

type ChildRequest = { type: "measure" };
type ChildReply =
  { type: "ready"; port: number; connectionString?: string } | { type: "measured"; rss: number };

// ---- child side ----

async function runChild(mode: string): Promise<void> {
  const send = (msg: ChildReply): void => void process.send?.(msg);
  if (mode === "emulator") {
    const emulator = await startWebPubSubEmulator({ port: 0 });
    send({ type: "ready", port: emulator.port, connectionString: emulator.connectionString });
  } else {
    // The baseline: the least a relay can do — forward each binary frame from sender to receiver.
    const wss = new WebSocketServer({
      port: 0,
      host: "127.0.0.1",
      perMessageDeflate: false,
      maxPayload: 1024 * 1024,
    });
    let receiver: WebSocket | undefined;
    wss.on("connection", (ws, req) => {
      if (req.url?.includes("receiver")) receiver = ws;
      else ws.on("message", (data, isBinary) => receiver?.send(data as Buffer, { binary: isBinary }));
    });
    await once(wss, "listening");
    send({ type: "ready", port: (wss.address() as AddressInfo).port });
  }
  process.on("message", (msg: ChildRequest) => {
    if (msg.type !== "measure") return;
    (globalThis as { gc?: () => void }).gc?.();
    send({ type: "measured", rss: process.memoryUsage().rss });
  });
  process.on("disconnect", () => process.exit(0));
}

// ---- parent side ----

interface Child {
  process: ChildProcess;
  port: number;
  connectionString: string | undefined;
  rss(): Promise<number>;
  stop(): Promise<void>;
}

async function startChild(mode: "emulator" | "relay"): Promise<Child> {
  const child = fork(__filename, ["--bench-child", mode], {
    execArgv: ["--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [ready] = (await once(child, "message")) as [ChildReply];
  if (ready.type !== "ready") throw new Error("bench child did not start");
  return {
    process: child,
    port: ready.port,
    connectionString: ready.connectionString,
    async rss() {
      child.send({ type: "measure" } satisfies ChildRequest);
      for (;;) {
        const [msg] = (await once(child, "message")) as [ChildReply];
        if (msg.type === "measured") return msg.rss;
      }
    },
    async stop() {
      const exited = once(child, "exit");
      child.disconnect();
      await exited;
    },
  };
}

async function open(
  url: string,
  protocols: string[] = [],
  headers: Record<string, string> = {},
): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
  await once(ws, "open");
  return ws;
}

/**
 * Opens a subprotocol client and waits for its `connected` message, listening before the upgrade
 * completes: the message may arrive in the same read as the 101 response.
 */
async function openConnected(url: string, headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(url, [PROTOBUF_SUBPROTOCOL], { headers, perMessageDeflate: false });
  await once(ws, "message");
  return ws;
}

/**
 * Sends `count` frames through the relay and returns payload bytes per second at the receiver.
 * Payloads are kept and their sha256 checked against what was sent after the clock stops.
 */
async function pump(
  sender: WebSocket,
  receiver: WebSocket,
  frame: Buffer,
  count: number,
  payloadOf: (data: Buffer) => Buffer,
  payload: Buffer,
): Promise<number> {
  const expected = createHash("sha256");
  for (let i = 0; i < count; i++) expected.update(payload);
  const payloads: Buffer[] = [];
  let received = 0;
  let bytes = 0;
  let wake: (() => void) | undefined;
  const done = new Promise<void>((resolve) => {
    receiver.on("message", (data: Buffer) => {
      const p = payloadOf(data);
      payloads.push(p);
      bytes += p.length;
      received++;
      wake?.();
      if (received === count) resolve();
    });
  });
  const closed = new Promise<never>((_, reject) =>
    receiver.once("close", (code, reason) =>
      reject(new Error(`receiver closed: ${code} ${reason.toString()}`)),
    ),
  );
  const start = process.hrtime.bigint();
  for (let sent = 0; sent < count; sent++) {
    while (sent - received >= WINDOW) await new Promise<void>((resolve) => (wake = resolve));
    sender.send(frame, { binary: true });
  }
  await Promise.race([done, closed]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  receiver.removeAllListeners("message");
  const actual = createHash("sha256");
  for (const p of payloads) actual.update(p);
  if (actual.digest("hex") !== expected.digest("hex"))
    throw new Error("relay delivered other bytes (sha256)");
  return bytes / seconds;
}

async function emulatorPair(
  child: Child,
  group: string,
): Promise<{ sender: WebSocket; receiver: WebSocket }> {
  const svc = new WebPubSubServiceClient(child.connectionString!, HUB, { allowInsecureConnection: true });
  const connect = async (userId: string): Promise<WebSocket> => {
    const { baseUrl, token } = await svc.getClientAccessToken({
      userId,
      roles: [`webpubsub.sendToGroup.${group}`],
      groups: [group],
    });
    return openConnected(baseUrl, { Authorization: `Bearer ${token}` });
  };
  return { sender: await connect("sender"), receiver: await connect("receiver") };
}

function binaryPayload(data: Buffer): Buffer {
  const msg = decodeDownstream(data);
  return msg.type === "message" && msg.data?.kind === "binary"
    ? Buffer.from(msg.data.bytes.buffer, msg.data.bytes.byteOffset, msg.data.bytes.length)
    : Buffer.alloc(0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function throughput(options: BenchOptions): Promise<BenchRow> {
  // Many short alternating rounds: on a shared machine load drifts, and pairs see the same load.
  // Full: 8 x 2048 x 64 KiB = 1 GiB through each relay.
  const count = options.quick ? 500 : 2048;
  const rounds = options.quick ? 3 : 8;
  const payload = randomBytes(MESSAGE_BYTES);
  const relay = await startChild("relay");
  const emulator = await startChild("emulator");
  try {
    const bare = {
      sender: await open(`ws://127.0.0.1:${relay.port}/?sender`),
      receiver: await open(`ws://127.0.0.1:${relay.port}/?receiver`),
    };
    const wps = await emulatorPair(emulator, "stream-1");
    const frame = Buffer.from(
      encodeUpstream({
        type: "sendToGroup",
        group: "stream-1",
        noEcho: true,
        data: { kind: "binary", bytes: payload },
      }),
    );
    // Warm both paths up, then alternate rounds so drift on a shared machine hits both alike.
    await pump(bare.sender, bare.receiver, payload, 200, (d) => d, payload);
    await pump(wps.sender, wps.receiver, frame, 200, binaryPayload, payload);
    const base: number[] = [];
    const ours: number[] = [];
    const runBase = async (): Promise<void> => {
      base.push(await pump(bare.sender, bare.receiver, payload, count, (d) => d, payload));
    };
    const runOurs = async (): Promise<void> => {
      ours.push(await pump(wps.sender, wps.receiver, frame, count, binaryPayload, payload));
    };
    for (let r = 0; r < rounds; r++) {
      // Alternate which goes first so neither always runs on a warmer (or busier) machine.
      if (r % 2 === 0) {
        await runBase();
        await runOurs();
      } else {
        await runOurs();
        await runBase();
      }
    }
    for (const ws of [bare.sender, bare.receiver, wps.sender, wps.receiver]) ws.close();
    const mib = (x: number): number => x / (1024 * 1024);
    const pairedRatio = median(ours.map((o, i) => o / base[i]!));
    return {
      group: "throughput",
      name: `throughput, Web PubSub emulator alone, 64 KiB binary over protobuf, window ${WINDOW} (${(rounds * count * MESSAGE_BYTES) / 2 ** 20} MiB in ${rounds} rounds, sha256-verified)`,
      value: mib(median(ours)),
      unit: "MiB/s",
      baseline: { name: "bare ws relay", value: mib(median(base)) },
      target: ">= 70% of baseline",
      note: `median of rounds; median of per-round ratios ${(pairedRatio * 100).toFixed(0)}%`,
    };
  } finally {
    await relay.stop();
    await emulator.stop();
  }
}

async function memoryPerConnection(options: BenchOptions): Promise<BenchRow> {
  const count = 1000;
  const emulator = await startChild("emulator");
  const svc = new WebPubSubServiceClient(emulator.connectionString!, HUB, { allowInsecureConnection: true });
  const connect = async (i: number): Promise<WebSocket> => {
    const group = `stream-${i}`;
    const { baseUrl, token } = await svc.getClientAccessToken({
      userId: `u${i}`,
      roles: [`webpubsub.sendToGroup.${group}`],
      groups: [group],
    });
    return openConnected(baseUrl, { Authorization: `Bearer ${token}` });
  };
  const sockets: WebSocket[] = [];
  try {
    // Warm-up so code loading and JIT are not charged to the connections.
    for (const ws of await Promise.all(Array.from({ length: 20 }, (_, i) => connect(-1 - i)))) ws.close();
    const before = await emulator.rss();
    for (let i = 0; i < count; i += 100) {
      sockets.push(...(await Promise.all(Array.from({ length: 100 }, (_, j) => connect(i + j)))));
    }
    const after = await emulator.rss();
    return {
      group: "scale",
      name: `emulator RSS per idle protobuf connection (${count} connections, each in its group, after GC)`,
      value: (after - before) / count / 1024,
      unit: "KiB",
      target: "<= 30 KiB",
      note: options.quick ? "same size in quick runs" : undefined,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    await emulator.stop();
  }
}

const suite: BenchSuite = async (options) => [await throughput(options), await memoryPerConnection(options)];
export default suite;

if (require.main === module && process.argv[2] === "--bench-child") {
  runChild(process.argv[3] ?? "").catch((err: unknown) => {
    process.stderr.write(`bench child: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
