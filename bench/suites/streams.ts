/**
 * Streams through the whole local stack with every piece in its own child process, so resident
 * memory is attributable: store (Azurite), relay (Web PubSub emulator), hub (IoT Hub emulator),
 * control (the Functions routes on the local host) and agent (a device: IoT Hub client + stream
 * listener echoing every channel). The service side (StreamsClient) runs in this process.
 *
 * Stream setup is split by timestamps taken at each hop:
 *   control plane  = POST /streams round trip (seen by a fetch wrapper in this process)
 *                    − the direct-method call (timed around the signaller in the control child);
 *   direct method  = that call − the device's relay join, which the device does before it answers
 *                    (timed around connectRelay in the agent child);
 *   relay connect  = the device's relay join + (openStream resolved − POST answered), i.e. both
 *                    sides joining the relay and the tunnel handshake;
 *   first byte     = opening a channel and one echoed byte.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import os from "node:os";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { Client } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import { startAzuriteTable } from "../../devstack/azurite";
import { startControlPlaneHost } from "../../devstack/controlPlaneHost";
import { startIotHubEmulator } from "../../emulators/iothub";
import { startWebPubSubEmulator } from "../../emulators/webpubsub";
import { createServices } from "../../shared/app";
import { loadConfig } from "../../shared/config";
import { IotHubDirectMethodInvoker, createIotHubClients } from "../../shared/iothub";
import { silentLogger } from "../../shared/log";
import { DeviceStreamListener } from "../../client/sdk/device";
import { connectRelay } from "../../client/sdk/relay";
import { type DeviceStream, StreamsClient } from "../../client/sdk/service";
import { DIRECT_METHOD_PAYLOAD_ROW } from "../capacity";
import { percentile } from "../stats";
import type { BenchRow, BenchSuite } from "../types";

const CHILD_FLAG = "--streams-bench-child";
const KEY = Buffer.alloc(32, 5).toString("base64");
const DEVICE = "bench-streams";

type Role = "store" | "relay" | "hub" | "control" | "agent";
type Msg = { type: string; id?: number; [k: string]: unknown };

// ---- child side ----

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

async function runChild(role: Role): Promise<void> {
  const send = (m: Msg): void => void process.send?.(m);
  /** Per-stream timings (ms), keyed by stream id: what this child saw of each setup. */
  const timings = new Map<string, number>();
  /** The largest direct-method request payload seen (control child): IoT Hub meters it in 4 KB. */
  let payloadBytes = 0;
  const handlers: Record<string, (m: Msg) => Promise<Msg> | Msg> = {
    rss: async () => {
      // Two GCs and a pause, so freed pages have been returned before RSS is read.
      gc();
      await new Promise((resolve) => setTimeout(resolve, 200));
      gc();
      return { type: "rss", rss: process.memoryUsage().rss };
    },
    timings: () => ({ type: "timings", timings: Object.fromEntries(timings), payloadBytes }),
    cpu: () => ({ type: "cpu", micros: cpuMicros() }),
  };
  process.on("message", (m: Msg) => {
    void (async () => {
      const handler = handlers[m.type];
      if (!handler) return;
      try {
        send({ ...(await handler(m)), id: m.id });
      } catch (err) {
        send({ type: "error", id: m.id, message: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  process.on("disconnect", () => process.exit(0));

  if (role === "store") {
    const azurite = await startAzuriteTable({ port: 0 });
    send({ type: "ready", connectionString: azurite.connectionString });
  } else if (role === "relay") {
    handlers.start = async (m) => {
      const wps = await startWebPubSubEmulator({
        port: 0,
        eventHandlers: {
          streams: { urlTemplate: `${String(m.hostUrl)}/api/relay/events`, userEventPattern: "report" },
        },
      });
      handlers.settled = async () => {
        await wps.eventsSettled();
        return { type: "settled" };
      };
      return { type: "started", connectionString: wps.connectionString, endpoint: wps.endpoint };
    };
    send({ type: "ready" });
  } else if (role === "hub") {
    const hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
    const device = await hub.createDevice(DEVICE);
    send({
      type: "ready",
      serviceConnectionString: hub.serviceConnectionString,
      caPath: hub.caPath,
      caPem: hub.caPem,
      device,
    });
  } else if (role === "control") {
    const { host, attach } = await startControlPlaneHost();
    handlers.start = async (m) => {
      const env = m.env as Record<string, string>;
      const config = loadConfig(env);
      const iot = config.iotHub;
      if (!("connectionString" in iot)) throw new Error("bench needs a connection string");
      const { client } = createIotHubClients({
        connectionString: iot.connectionString,
        ca: String(m.caPem),
      });
      const real = new IotHubDirectMethodInvoker(client);
      const services = await createServices(config, {
        logger: silentLogger,
        signaller: {
          // Times the call only; the invoker itself is the one createServices would build.
          async invoke(target, request, options) {
            payloadBytes = Math.max(payloadBytes, Buffer.byteLength(JSON.stringify(request.payload)));
            const started = performance.now();
            try {
              return await real.invoke(target, request, options);
            } finally {
              const { streamId } = (request.payload ?? {}) as { streamId?: string };
              if (streamId) timings.set(streamId, performance.now() - started);
            }
          },
        },
      });
      attach(services);
      return { type: "started" };
    };
    send({ type: "ready", hostUrl: host.url });
  } else {
    handlers.start = async (m) => {
      const client = Client.fromConnectionString(String(m.device), Mqtt);
      client.setRetryPolicy(new NoRetry());
      client.on("error", () => undefined);
      await client.setOptions({ ca: String(m.caPem) });
      await client.open();
      // The agent's echo target (client/cli/agent.ts), with the relay join timed.
      const listener = new DeviceStreamListener(client, {
        relay: { endpoint: `http://${String(m.relayHost)}`, hub: String(m.relayHub), allowInsecure: true },
        maxStreams: Number(m.maxStreams),
        maxChannelsPerStream: 256,
        onRequest: () => ({ accept: true }),
        connectRelay: async (options) => {
          const started = performance.now();
          const relay = await connectRelay(options);
          timings.set(options.group.replace(/^stream\./, ""), performance.now() - started);
          return relay;
        },
      });
      listener.on("stream", (stream) =>
        stream.on("channel", (channel) => {
          channel.on("error", () => undefined);
          channel.pipe(channel);
        }),
      );
      return { type: "started" };
    };
    send({ type: "ready" });
  }
}

// ---- parent side ----

interface Child {
  process: ChildProcess;
  ready: Msg;
  call(m: Msg): Promise<Msg>;
  rss(): Promise<number>;
  stop(): Promise<void>;
}

async function startChild(role: Role): Promise<Child> {
  const child = fork(__filename, [CHILD_FLAG, role], {
    execArgv: ["--expose-gc"],
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  const [ready] = (await Promise.race([
    once(child, "message"),
    exited.then(() => {
      throw new Error(`streams bench child '${role}' exited before it was ready`);
    }),
  ])) as [Msg];
  let next = 0;
  const pending = new Map<number, (m: Msg) => void>();
  child.on("message", (m: Msg) => {
    if (m.id !== undefined) pending.get(m.id)?.(m);
  });
  const call = (m: Msg): Promise<Msg> =>
    new Promise<Msg>((resolve, reject) => {
      const id = next++;
      pending.set(id, (reply) => {
        pending.delete(id);
        if (reply.type === "error") reject(new Error(`${role}: ${String(reply.message)}`));
        else resolve(reply);
      });
      child.send({ ...m, id });
    });
  return {
    process: child,
    ready,
    call,
    rss: async () => Number((await call({ type: "rss" })).rss),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}

const ms = (from: number): number => performance.now() - from;

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

interface Setup {
  total: number;
  post: number;
  join: number;
  firstByte: number;
  streamId: string;
}

async function echoOneByte(channel: Duplex): Promise<void> {
  const got = once(channel, "data");
  channel.write(Buffer.of(0x61));
  await got;
}

function rowsOf(
  label: string,
  xs: number[],
  base: { name: string; p50: number; p99: number } | undefined,
  note: string,
): BenchRow[] {
  const s = [...xs].sort((a, b) => a - b);
  return (["p50", "p99"] as const).map((p) => ({
    group: "setup",
    name: `${label} ${p} (n=${s.length})`,
    value: percentile(s, p === "p50" ? 50 : 99),
    unit: "ms",
    ...(base ? { baseline: { name: `${base.name} ${p}`, value: base[p] } } : {}),
    note,
  }));
}

const suite: BenchSuite = async ({ quick }) => {
  const held = quick ? 50 : 1000;
  const rows: BenchRow[] = [];
  const children: Child[] = [];
  const streams: DeviceStream[] = [];
  try {
    const [store, relay, hub, control, agent] = await Promise.all(
      (["store", "relay", "hub", "control", "agent"] as const).map(startChild),
    );
    children.push(store!, relay!, hub!, control!, agent!);
    const hostUrl = String(control!.ready.hostUrl);
    const wps = await relay!.call({ type: "start", hostUrl });
    await control!.call({
      type: "start",
      caPem: hub!.ready.caPem,
      env: {
        TABLES_CONNECTION_STRING: String(store!.ready.connectionString),
        WEBPUBSUB_CONNECTION_STRING: String(wps.connectionString),
        IOTHUB_CONNECTION_STRING: String(hub!.ready.serviceConnectionString),
        IOTHUB_CA_FILE: String(hub!.ready.caPath),
        SERVICE_SAS_POLICIES: JSON.stringify([
          { name: "bench", primaryKey: KEY, devices: ["*"], streams: ["*"] },
        ]),
        SERVICE_SAS_RESOURCE: "127.0.0.1",
        STREAMS_MAX_PER_DEVICE: String(held + 100),
        // What one device can hold is the figure, and one caller stands in for all of them here:
        // its default share (half the device's limit, issue 12) would cap the row at 550.
        STREAMS_MAX_PER_CALLER: String(held + 100),
      },
    });
    await agent!.call({
      type: "start",
      device: hub!.ready.device,
      caPem: hub!.ready.caPem,
      relayHost: new URL(String(wps.endpoint)).host,
      relayHub: "streams",
      maxStreams: held + 100,
    });

    // The POST round trip, seen from the client, by stream id.
    const posts = new Map<string, number>();
    const timedFetch: typeof fetch = async (input, init) => {
      const started = performance.now();
      const res = await fetch(input, init);
      if (init?.method === "POST" && res.status === 201) {
        const body = (await res.clone().json()) as { streamId?: string };
        if (body.streamId) posts.set(body.streamId, ms(started));
      }
      return res;
    };
    const client = StreamsClient.fromConnectionString(
      `Endpoint=${hostUrl};SharedAccessKeyName=bench;SharedAccessKey=${KEY}`,
      { fetch: timedFetch },
    );
    const health = async (): Promise<number> => {
      const started = performance.now();
      await (await fetch(`${hostUrl}/api/health`)).arrayBuffer();
      return ms(started);
    };

    // ---- stream setup, one at a time ----
    const setupCount = quick ? 10 : 100;
    const setups: Setup[] = [];
    const healths: number[] = [];
    for (let i = 0; i < setupCount + 5; i++) {
      healths.push(await health());
      const started = performance.now();
      const stream = await client.openStream(DEVICE, "echo");
      const opened = ms(started);
      const channel = await stream.openChannel();
      await echoOneByte(channel);
      const total = ms(started);
      channel.destroy();
      await stream.close();
      const post = posts.get(stream.streamId) ?? NaN;
      // The first few warm up connections and JIT.
      if (i >= 5)
        setups.push({
          total,
          post,
          join: opened - post,
          firstByte: total - opened,
          streamId: stream.streamId,
        });
    }
    const controlTimings = await control!.call({ type: "timings" });
    const dm = controlTimings.timings as Record<string, number>;
    const deviceJoin = (await agent!.call({ type: "timings" })).timings as Record<string, number>;
    const hs = [...healths.slice(5)].sort((a, b) => a - b);
    const healthBase = { name: "GET /api/health", p50: percentile(hs, 50), p99: percentile(hs, 99) };
    const how = "timestamps per hop, see bench/suites/streams.ts";
    rows.push(
      ...rowsOf(
        "stream setup, openStream → first echoed byte",
        setups.map((s) => s.total),
        healthBase,
        how,
      ),
      ...rowsOf(
        "  control plane (POST − direct method)",
        setups.map((s) => s.post - (dm[s.streamId] ?? NaN)),
        healthBase,
        "HTTP + Azurite + token minting, this code",
      ),
      ...rowsOf(
        "  direct method (call − device's relay join)",
        setups.map((s) => (dm[s.streamId] ?? NaN) - (deviceJoin[s.streamId] ?? NaN)),
        undefined,
        "IoT Hub emulator → MQTT → device SDK and back",
      ),
      ...rowsOf(
        "  relay connect (both joins + tunnel handshake)",
        setups.map((s) => s.join + (deviceJoin[s.streamId] ?? NaN)),
        undefined,
        "Web PubSub emulator, includes its connect event to the control plane",
      ),
      ...rowsOf(
        "  first byte (open channel + 1 B echo)",
        setups.map((s) => s.firstByte),
        undefined,
        "",
      ),
    );

    rows.push({
      group: "setup",
      name: DIRECT_METHOD_PAYLOAD_ROW,
      value: Number(controlTimings.payloadBytes),
      unit: "B",
      target: "<= 4096 B (one 4 KB IoT Hub chunk)",
      note: "JSON of the stream offer (relay URL + token); feeds docs/performance.md's capacity table",
    });

    // ---- concurrent streams held, memory per stream ----
    // Streams open at the same concurrency as the sustained loop below.
    const concurrency = 16;
    const pieces = { agent: agent!, relay: relay!, "control plane": control! };
    const before = Object.fromEntries(
      await Promise.all(Object.entries(pieces).map(async ([k, c]) => [k, await c.rss()] as const)),
    );
    let next = 0;
    let heldErrors = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < held) {
          try {
            streams.push(await client.openStream(DEVICE, "echo"));
          } catch {
            heldErrors++;
          }
        }
      }),
    );
    // Every held stream must still carry data.
    const probe = streams.slice(0, 20);
    await Promise.all(probe.map(async (s) => echoOneByte(await s.openChannel()).then(() => undefined)));
    const after = Object.fromEntries(
      await Promise.all(Object.entries(pieces).map(async ([k, c]) => [k, await c.rss()] as const)),
    );
    const alive = streams.filter((s) => !s.closed).length;
    rows.push({
      group: "scale",
      name: `concurrent streams held (asked ${held}, one device)`,
      value: alive,
      unit: "streams",
      target: ">= 1000",
      note: `${heldErrors} open errors${quick ? "; quick run holds fewer" : ""}`,
    });
    for (const piece of Object.keys(pieces)) {
      rows.push({
        group: "scale",
        name: `RSS per stream, ${piece} ((after − before) / ${alive}, after GC)`,
        value: (after[piece]! - before[piece]!) / Math.max(1, alive) / 1024,
        unit: "KiB",
        note: `${piece} in its own process${quick ? "; few streams, so noisy" : ""}; RSS ${(before[piece]! / 2 ** 20).toFixed(0)} → ${(after[piece]! / 2 ** 20).toFixed(0)} MiB`,
      });
    }
    // Closing them all at once sends the control plane two `disconnected` events and two byte
    // reports per stream; the next figures must not be measured while it is still catching up.
    const teardownStart = performance.now();
    await Promise.all(streams.splice(0).map((s) => s.close().catch(() => undefined)));
    await relay!.call({ type: "settled" });
    rows.push({
      group: "scale",
      name: `teardown: ${alive} streams closed at once, until every relay event is handled`,
      value: ms(teardownStart),
      unit: "ms",
      note: "DELETE each, then 2 disconnected events + 2 byte reports each through the control plane",
    });

    // ---- new streams per second, sustained ----
    // CPU time per piece over the loop and the teardown it leaves: on a small machine, the sum says
    // how many streams/s the cores can carry, and the split says which piece to make cheaper.
    const everyPiece = { store: store!, relay: relay!, hub: hub!, "control plane": control!, agent: agent! };
    const cpuOf = async (): Promise<Record<string, number>> => ({
      ...Object.fromEntries(
        await Promise.all(
          Object.entries(everyPiece).map(
            async ([k, c]) => [k, Number((await c.call({ type: "cpu" })).micros)] as const,
          ),
        ),
      ),
      "service SDK (this process)": cpuMicros(),
    });
    const cpuBefore = await cpuOf();
    const seconds = quick ? 5 : 30;
    let opened = 0;
    let errors = 0;
    let firstError = "";
    const deadline = performance.now() + seconds * 1000;
    const sustainedStart = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          try {
            const s = await client.openStream(DEVICE, "echo");
            await s.close();
            opened++;
          } catch (err) {
            errors++;
            firstError ||= err instanceof Error ? err.message : String(err);
          }
        }
      }),
    );
    const sustainedSeconds = ms(sustainedStart) / 1000;
    await relay!.call({ type: "settled" });
    const cpuAfter = await cpuOf();
    const healthStart = performance.now();
    let healthCount = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (ms(healthStart) < 1000) {
          await health();
          healthCount++;
        }
      }),
    );
    rows.push({
      group: "setup",
      name: `new streams/s sustained ${seconds} s, open + handshake + close (c=${concurrency})`,
      value: opened / sustainedSeconds,
      unit: "/s",
      baseline: { name: "GET /api/health/s, c=16", value: healthCount / (ms(healthStart) / 1000) },
      target: ">= 100 /s",
      note: `${errors} errors${firstError ? ` (first: ${firstError.slice(0, 80)})` : ""}`,
    });
    const cpuMs = Object.keys(cpuAfter).map(
      (k) => [k, (cpuAfter[k]! - cpuBefore[k]!) / 1000 / Math.max(1, opened)] as const,
    );
    const cpuTotal = cpuMs.reduce((sum, [, v]) => sum + v, 0);
    rows.push({
      group: "setup",
      name: "CPU per new stream, all pieces (sustained loop and its teardown)",
      value: cpuTotal,
      unit: "ms",
      note: `${os.cpus().length} cores carry at most ${((os.cpus().length * 1000) / cpuTotal).toFixed(0)} streams/s at this cost`,
    });
    for (const [piece, v] of cpuMs) {
      rows.push({ group: "setup", name: `  CPU per new stream, ${piece}`, value: v, unit: "ms", note: "" });
    }

    // ---- 200 channels on one stream ----
    const channelsN = 200;
    const perChannel = (quick ? 64 : 256) * 1024;
    const stream = await client.openStream(DEVICE, "echo");
    streams.push(stream);
    const channels = await Promise.all(Array.from({ length: channelsN }, () => stream.openChannel()));
    const echoed = channels.map(() => 0);
    let firstDone: number[] | undefined;
    const chunk = Buffer.alloc(16 * 1024, 0x5a);
    const channelsStart = performance.now();
    await Promise.all(
      channels.map(async (ch, i) => {
        const done = new Promise<void>((resolve, reject) => {
          ch.on("error", reject);
          ch.on("data", (b: Buffer) => {
            echoed[i]! += b.length;
            if (echoed[i]! >= perChannel) {
              firstDone ??= [...echoed];
              resolve();
            }
          });
        });
        for (let sent = 0; sent < perChannel; sent += chunk.length) {
          if (!ch.write(chunk)) await once(ch, "drain");
        }
        await done;
      }),
    );
    const channelsSeconds = ms(channelsStart) / 1000;
    for (const ch of channels) ch.destroy();
    const fair = firstDone ?? echoed;
    rows.push(
      {
        group: "scale",
        name: `${channelsN} channels on one stream, ${perChannel / 1024} KiB echoed each, aggregate one way`,
        value: (channelsN * perChannel) / 2 ** 20 / channelsSeconds,
        unit: "MiB/s",
        note: "echo: each byte crosses the tunnel twice",
      },
      {
        group: "scale",
        name: `${channelsN} channels: least/most bytes echoed when the first channel finished`,
        value: (Math.min(...fair) / Math.max(...fair)) * 100,
        unit: "%",
        target: "close to 100%",
        note:
          `min ${(Math.min(...fair) / 1024).toFixed(0)} KiB, max ${(Math.max(...fair) / 1024).toFixed(0)} KiB` +
          (quick ? "; quick: 64 KiB fits in one credit window, so this says little" : ""),
      },
    );

    // ---- dead peer: kill the agent's process ----
    const killed = await Promise.all(Array.from({ length: 4 }, () => stream.openChannel()));
    const ended = Promise.all(
      killed.map(
        (ch) =>
          new Promise<void>((resolve) => {
            ch.on("error", () => resolve());
            ch.on("close", () => resolve());
          }),
      ),
    );
    const killStart = performance.now();
    agent!.process.kill("SIGKILL");
    await ended;
    rows.push({
      group: "tunnel",
      name: "dead-peer detection: agent process killed → service channels end",
      value: ms(killStart),
      unit: "ms",
      target: "<= 5000 ms",
      note: "the relay sees the socket close; the control plane's disconnected handling ends the stream",
    });
  } finally {
    await Promise.all(streams.map((s) => s.close().catch(() => undefined)));
    for (const c of children.reverse()) await c.stop();
  }
  return rows;
};

export default suite;

if (require.main === module && process.argv[2] === CHILD_FLAG) {
  runChild(process.argv[3] as Role).catch((err: unknown) => {
    process.stderr.write(
      `streams bench child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
