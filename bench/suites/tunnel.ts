/**
 * The tunnel through the whole local stack, beside baselines measured in the same run:
 *   full:  TCP client → `forward` (Forwarder) → Web PubSub emulator → agent (startAgent) → TCP target
 *   bare:  TCP client → ws bridge → a bare ws relay → ws bridge → TCP target (same hops, 64 KiB frames,
 *          no flow control, no tunnel)
 *   raw:   TCP client → TCP target on loopback.
 * Everything runs in this process (control plane on Azurite, IoT Hub emulator, device SDK over MQTT),
 * so the figures are this code's overhead on this machine, not Azure's.
 */
import { once } from "node:events";
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Client } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import WebSocket, { WebSocketServer, createWebSocketStream } from "ws";
import { startAzuriteTable } from "../../devstack/azurite";
import { startControlPlaneHost } from "../../devstack/controlPlaneHost";
import { startIotHubEmulator } from "../../emulators/iothub";
import { startWebPubSubEmulator } from "../../emulators/webpubsub";
import { createServices } from "../../shared/app";
import { loadConfig } from "../../shared/config";
import { silentLogger } from "../../shared/log";
import { startAgent } from "../../client/cli/agent";
import { Forwarder } from "../../client/cli/forward";
import { DeviceStreamListener } from "../../client/sdk/device";
import { type RelayConnection, connectRelay } from "../../client/sdk/relay";
import { StreamsClient } from "../../client/sdk/service";
import { percentile } from "../stats";
import type { BenchRow, BenchSuite } from "../types";

const MiB = 1024 * 1024;
const KEY = Buffer.alloc(32, 7).toString("base64");

type Closer = () => Promise<void>;

export async function listen(server: Server | WebSocketServer): Promise<number> {
  if (server instanceof WebSocketServer) {
    if (!server.address()) await once(server, "listening");
    return (server.address() as AddressInfo).port;
  }
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/**
 * A TCP sink that checks every byte a connection delivers against what `throughput` sends, as it
 * arrives: `received(n)` resolves once a connection has n bytes, with the offset of the first wrong
 * byte if any. Nothing is kept. It used to keep every chunk and hash them after the clock stopped,
 * but holding a whole transfer (512 MiB and more) slowed this process more the longer the transfer,
 * and with it the tunnel more than the bare relay (docs/performance.md, "Channel cost"); a compare is
 * a memcmp, far cheaper than the transfer itself.
 */
export async function sink() {
  let waiter: { n: number; resolve: (result: Received) => void } | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    let count = 0;
    let mismatchAt: number | undefined;
    socket.on("data", (b: Buffer) => {
      if (mismatchAt === undefined) {
        const wrong = firstDifference(count, b);
        if (wrong >= 0) mismatchAt = count + wrong;
      }
      count += b.length;
      if (waiter && count >= waiter.n) {
        waiter.resolve({ bytes: count, mismatchAt });
        waiter = undefined;
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await listen(server);
  return {
    port,
    received: (n: number) => new Promise<Received>((resolve) => (waiter = { n, resolve })),
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

interface Received {
  bytes: number;
  /** Offset of the first byte that differs from what was sent. */
  mismatchAt: number | undefined;
}

export async function echoServer() {
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.pipe(socket);
  });
  return { port: await listen(server), close: () => closeServer(server) };
}

/** Random bytes; chunk i is a 64 KiB window at a varying offset, so loss or reordering is seen. */
const CHUNK = 64 * 1024;
const POOL = randomBytes(CHUNK + 4096);
const chunkAt = (i: number, size: number): Buffer => POOL.subarray((i * 61) % 4096, ((i * 61) % 4096) + size);

/** Index in `data` of the first byte that differs from the sent stream at `offset`, or -1. */
function firstDifference(offset: number, data: Buffer): number {
  for (let at = 0; at < data.length;) {
    const within = (offset + at) % CHUNK;
    const take = Math.min(data.length - at, CHUNK - within);
    const want = chunkAt(Math.floor((offset + at) / CHUNK), CHUNK).subarray(within, within + take);
    if (!want.equals(data.subarray(at, at + take))) {
      for (let k = 0; k < take; k++) if (want[k] !== data[at + k]) return at + k;
    }
    at += take;
  }
  return -1;
}

/**
 * Sends `total` bytes to port in 64 KiB writes; resolves with the seconds until the sink had them
 * all, every one checked.
 */
export async function throughput(
  port: number,
  total: number,
  received: (n: number) => Promise<Received>,
): Promise<number> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  const done = received(total);
  const start = performance.now();
  for (let i = 0, sent = 0; sent < total; i++, sent += CHUNK) {
    if (!socket.write(chunkAt(i, Math.min(CHUNK, total - sent)))) await once(socket, "drain");
  }
  const { bytes, mismatchAt } = await done;
  const seconds = (performance.now() - start) / 1000;
  socket.destroy();
  if (mismatchAt !== undefined || bytes !== total) {
    throw new Error(
      `throughput via port ${port}: ${bytes} bytes received for ${total} sent` +
        (mismatchAt === undefined ? "" : `, the first wrong one at offset ${mismatchAt}`),
    );
  }
  return seconds;
}

/** p50 and p99 of `count` 64-byte round trips through an echo at `port`. */
async function rtt(port: number, count: number): Promise<{ p50: number; p99: number }> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  socket.setNoDelay(true);
  const probe = Buffer.alloc(64, 0x61);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    let got = 0;
    await new Promise<void>((resolve) => {
      const onData = (b: Buffer) => {
        got += b.length;
        if (got >= probe.length) {
          socket.off("data", onData);
          resolve();
        }
      };
      socket.on("data", onData);
      socket.write(probe);
    });
    samples.push(performance.now() - start);
  }
  socket.destroy();
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** The baseline relay: pairs ws clients by path and forwards their messages, with no flow control. */
export async function bareRelay(): Promise<{ port: number; close: Closer }> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
  const waiting = new Map<string, WebSocket>();
  wss.on("connection", (ws, req) => {
    const key = req.url ?? "/";
    const peer = waiting.get(key);
    if (!peer) {
      waiting.set(key, ws);
      return;
    }
    waiting.delete(key);
    ws.on("message", (data: Buffer) => peer.send(data));
    peer.on("message", (data: Buffer) => ws.send(data));
    ws.on("close", () => peer.terminate());
    peer.on("close", () => ws.terminate());
  });
  const port = await listen(wss);
  return { port, close: () => new Promise<void>((resolve) => wss.close(() => resolve())) };
}

/** TCP listener → ws client of the bare relay; the far end dials `targetPort`. */
export async function bareBridge(
  relayPort: number,
  targetPort: number,
): Promise<{ port: number; close: Closer }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const path = `/pair-${n++}`;
    const near = createWebSocketStream(
      new WebSocket(`ws://127.0.0.1:${relayPort}${path}`, { perMessageDeflate: false }),
    );
    const farWs = new WebSocket(`ws://127.0.0.1:${relayPort}${path}`, { perMessageDeflate: false });
    const far = createWebSocketStream(farWs);
    const target = connect(targetPort, "127.0.0.1");
    for (const s of [near, far, target, socket]) s.on("error", () => undefined);
    socket.pipe(near).pipe(socket);
    target.pipe(far).pipe(target);
    socket.on("close", () => {
      sockets.delete(socket);
      near.destroy();
      far.destroy();
      target.destroy();
    });
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

/** One `forward` per stream name of a device, each on its own loopback port (in `names`' order). */
export function forwarders(
  client: StreamsClient,
  deviceId: string,
  names: readonly string[],
  closers: Closer[],
): Promise<number[]> {
  return Promise.all(
    names.map(async (name) => {
      const f = new Forwarder(client, { deviceId, name, listen: { host: "127.0.0.1", port: 0 } });
      closers.push(() => f.close());
      return (await f.listen()).port;
    }),
  );
}

export async function localStack() {
  const closers: Closer[] = [];
  const { host, eventHandler, attach } = await startControlPlaneHost();
  closers.push(() => host.close());
  const wps = await startWebPubSubEmulator({ port: 0, eventHandlers: { streams: eventHandler } });
  const hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
  const azurite = await startAzuriteTable({ port: 0 });
  closers.push(
    () => azurite.close(),
    () => hub.close(),
    () => wps.close(),
  );
  const services = await createServices(
    loadConfig({
      TABLES_CONNECTION_STRING: azurite.connectionString,
      WEBPUBSUB_CONNECTION_STRING: wps.connectionString,
      IOTHUB_CONNECTION_STRING: hub.serviceConnectionString,
      IOTHUB_CA_FILE: hub.caPath,
      SERVICE_SAS_POLICIES: JSON.stringify([
        { name: "bench", primaryKey: KEY, devices: ["*"], streams: ["*"] },
      ]),
      SERVICE_SAS_RESOURCE: "127.0.0.1",
      STREAMS_MAX_PER_DEVICE: "1000",
    }),
    { logger: silentLogger },
  );
  attach(services);
  const device = async (id: string) => {
    const client = Client.fromConnectionString(await hub.createDevice(id), Mqtt);
    client.setRetryPolicy(new NoRetry());
    client.on("error", () => undefined);
    await client.setOptions({ ca: hub.caPem });
    await client.open();
    closers.push(() => client.close().then(() => undefined));
    return client;
  };
  const client = StreamsClient.fromConnectionString(
    `Endpoint=${host.url};SharedAccessKeyName=bench;SharedAccessKey=${KEY}`,
  );
  return {
    client,
    device,
    /** For a device in another process: its connection string and the hub's CA. */
    deviceConnectionString: (id: string) => hub.createDevice(id),
    caPem: hub.caPem,
    keyConnectionString: `Endpoint=${host.url};SharedAccessKeyName=bench;SharedAccessKey=${KEY}`,
    relayHost: new URL(wps.endpoint).host,
    relayEndpoint: wps.endpoint,
    relayHub: "streams",
    /** For relay clients minted outside the control plane, on another hub (bench/floor). */
    relayConnectionString: wps.connectionString,
    close: async () => {
      for (const c of closers.reverse()) await c().catch(() => undefined);
    },
  };
}

const suite: BenchSuite = async ({ quick }) => {
  const total = quick ? 32 * MiB : 1024 * MiB;
  const rttCount = quick ? 200 : 1000;
  const closers: Closer[] = [];
  const rows: BenchRow[] = [];
  try {
    const target = await sink();
    const echo = await echoServer();
    closers.push(target.close, echo.close);
    const stack = await localStack();
    closers.push(stack.close);

    const agentClient = await stack.device("bench-agent");
    const agent = startAgent(agentClient, {
      targets: new Map([
        ["sink", { host: "127.0.0.1", port: target.port }],
        ["echo", { host: "127.0.0.1", port: echo.port }],
      ]),
      relay: { endpoint: stack.relayEndpoint, hub: stack.relayHub, allowInsecure: true },
    });
    closers.push(() => agent.close());
    const forwardPorts = await forwarders(stack.client, "bench-agent", ["sink", "echo"], closers);
    const relay = await bareRelay();
    closers.push(relay.close);
    const bareSink = await bareBridge(relay.port, target.port);
    const bareEcho = await bareBridge(relay.port, echo.port);
    closers.push(bareSink.close, bareEcho.close);

    // Warm up every path (stream opened, JIT), then measure.
    await throughput(forwardPorts[0]!, 4 * MiB, target.received);
    await throughput(bareSink.port, 4 * MiB, target.received);
    const raw = total / MiB / (await throughput(target.port, total, target.received));
    const bare = total / MiB / (await throughput(bareSink.port, total, target.received));
    const full = total / MiB / (await throughput(forwardPorts[0]!, total, target.received));
    const label = `${total / MiB} MiB one way, every byte verified`;
    rows.push(
      { group: "tunnel", name: `throughput, raw loopback TCP (${label})`, value: raw, unit: "MiB/s" },
      {
        group: "tunnel",
        name: `throughput, bare ws relay (${label})`,
        value: bare,
        unit: "MiB/s",
        baseline: { name: "raw TCP", value: raw },
      },
      {
        group: "tunnel",
        name: `throughput, full tunnel forward→relay→agent (${label})`,
        value: full,
        unit: "MiB/s",
        baseline: { name: "bare ws relay", value: bare },
        target: ">= 50% of bare; goal >= 100 MB/s",
      },
    );

    const rawRtt = await rtt(echo.port, rttCount);
    const bareRtt = await rtt(bareEcho.port, rttCount);
    await rtt(forwardPorts[1]!, 10);
    const fullRtt = await rtt(forwardPorts[1]!, rttCount);
    for (const p of ["p50", "p99"] as const) {
      rows.push(
        { group: "tunnel", name: `RTT ${p}, 64 B, raw TCP (n=${rttCount})`, value: rawRtt[p], unit: "ms" },
        {
          group: "tunnel",
          name: `RTT ${p}, 64 B, bare ws relay (n=${rttCount})`,
          value: bareRtt[p],
          unit: "ms",
          baseline: { name: "raw TCP", value: rawRtt[p] },
        },
        {
          group: "tunnel",
          name: `RTT ${p}, 64 B, full tunnel forward→relay→agent (n=${rttCount})`,
          value: fullRtt[p],
          unit: "ms",
          baseline: { name: "raw TCP", value: rawRtt[p] },
          ...(p === "p50" ? { target: "<= 2 ms" } : {}),
          note: `bare ws relay ${bareRtt[p].toFixed(3)} ms`,
        },
      );
    }

    // Dead peer: the device's relay socket is cut (as when its process dies); how long until the
    // service side's stream ends? The control plane closes the survivor on `disconnected`.
    const dyingClient = await stack.device("bench-dying");
    const relays: RelayConnection[] = [];
    const dying = new DeviceStreamListener(dyingClient, {
      relay: { endpoint: stack.relayEndpoint, hub: stack.relayHub, allowInsecure: true },
      onRequest: () => ({ accept: true }),
      connectRelay: async (options) => {
        const r = await connectRelay(options);
        relays.push(r);
        return r;
      },
    });
    closers.push(() => dying.close());
    const detections: number[] = [];
    for (let i = 0; i < (quick ? 3 : 10); i++) {
      const stream = await stack.client.openStream("bench-dying", "x");
      const closed = stream.whenClosed();
      const start = performance.now();
      relays.at(-1)!.terminate();
      await closed;
      detections.push(performance.now() - start);
    }
    detections.sort((a, b) => a - b);
    rows.push({
      group: "tunnel",
      name: `dead-peer detection (device relay socket cut), max of ${detections.length}`,
      value: detections.at(-1)!,
      unit: "ms",
      target: "<= 5000 ms",
      note: "via the control plane's disconnected handling; keepalive (45 s) covers silent loss",
    });

    // New streams per second: bench/suites/streams.ts (sustained, with errors, pieces in processes).
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  }
  return rows;
};

export default suite;
