/**
 * The tunnel multiplexer's own overhead: throughput over an in-memory relay (with the emulator's
 * SlowClient limits) against a plain in-memory Duplex pipe carrying the same data in the same run,
 * and fairness across 200 channels sharing one stream. No network, no Web PubSub: these figures
 * bound what the full stack can reach, they are not end-to-end figures.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { PassThrough, type Readable, type Writable } from "node:stream";
import {
  type TunnelChannel,
  TunnelSession,
  createMemoryRelay,
  decodeFrame,
  encodeData,
} from "../../client/tunnel";
import type { BenchOptions, BenchRow, BenchSuite } from "../types";

const MiB = 1024 * 1024;

interface Pair {
  service: TunnelSession;
  device: TunnelSession;
  relay: ReturnType<typeof createMemoryRelay>;
}

async function startPair(): Promise<Pair> {
  const relay = createMemoryRelay();
  const service = new TunnelSession({ role: "service", transport: relay.a });
  const device = new TunnelSession({ role: "device", transport: relay.b, maxChannels: 1000 });
  device.start();
  service.start();
  await service.waitReady();
  return { service, device, relay };
}

async function stopPair(pair: Pair): Promise<void> {
  const closed = Promise.all([once(pair.service, "close"), once(pair.device, "close")]);
  pair.service.close();
  pair.device.close();
  await closed;
}

/** Writes `total` bytes as views of `source`, honouring backpressure, then ends. */
async function pump(writable: Writable, total: number, chunk: number, source: Buffer): Promise<void> {
  for (let sent = 0; sent < total; sent += chunk) {
    const offset = sent % (source.length - chunk);
    if (!writable.write(source.subarray(offset, offset + Math.min(chunk, total - sent)))) {
      await once(writable, "drain");
    }
  }
  writable.end();
}

function drain(readable: Readable, onBytes?: (n: number) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0;
    readable.on("data", (data: Buffer) => {
      received += data.length;
      onBytes?.(data.length);
    });
    readable.once("end", () => resolve(received));
    readable.once("error", reject);
  });
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return (performance.now() - started) / 1000;
}

async function baselineMBps(total: number, chunk: number, source: Buffer): Promise<number> {
  const pipe = new PassThrough();
  const seconds = await timed(() => Promise.all([pump(pipe, total, chunk, source), drain(pipe)]));
  return total / MiB / seconds;
}

async function tunnelMBps(total: number, chunk: number, source: Buffer): Promise<number> {
  const pair = await startPair();
  const incoming = once(pair.device, "channel") as Promise<[TunnelChannel]>;
  const channel = await pair.service.openChannel();
  const [device] = await incoming;
  const seconds = await timed(() => Promise.all([pump(channel, total, chunk, source), drain(device)]));
  await stopPair(pair);
  return total / MiB / seconds;
}

/**
 * 200 channels each send the same amount at once. Fairness is judged when the first channel
 * finishes: the least-served channel's share against the best-served one's.
 */
async function fairness(channels: number, perChannel: number, source: Buffer) {
  const pair = await startPair();
  const devices: TunnelChannel[] = [];
  pair.device.on("channel", (channel) => devices.push(channel));
  const opened = await Promise.all(Array.from({ length: channels }, () => pair.service.openChannel()));
  const received = new Array<number>(channels).fill(0);
  let snapshot: number[] | undefined;
  const finishTimes: number[] = [];
  const started = performance.now();
  await Promise.all([
    ...opened.map((channel) => pump(channel, perChannel, 16 * 1024, source)),
    ...devices.map((device, i) =>
      drain(device, (n) => (received[i]! += n)).then(() => {
        snapshot ??= [...received];
        finishTimes.push((performance.now() - started) / 1000);
      }),
    ),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const stats = {
    queue: Math.max(pair.relay.b.stats.maxQueuedMessages, pair.relay.a.stats.maxQueuedMessages),
  };
  await stopPair(pair);
  const shares = snapshot ?? received;
  return {
    aggregateMBps: (channels * perChannel) / MiB / seconds,
    minShare: Math.min(...shares) / Math.max(...shares),
    firstFinish: Math.min(...finishTimes),
    lastFinish: Math.max(...finishTimes),
    maxQueuedMessages: stats.queue,
  };
}

/** The codec alone: one copy and two CRC-32 passes per frame, the floor under the multiplexer's cost. */
function codecMBps(total: number, source: Buffer): number {
  const chunk = 64 * 1024;
  const started = performance.now();
  for (let sent = 0, seq = 0; sent < total; sent += chunk, seq++) {
    const offset = sent % (source.length - chunk);
    const result = decodeFrame(encodeData(seq, 1, [source], offset, chunk));
    if (!result.ok) throw result.error;
  }
  return total / MiB / ((performance.now() - started) / 1000);
}

/** From a device's relay connection dropping to the service's channel erroring. */
async function peerDropMs(): Promise<number> {
  const pair = await startPair();
  pair.device.on("channel", (channel) => channel.on("error", () => undefined));
  const channel = await pair.service.openChannel();
  const failed = once(channel, "error");
  const started = performance.now();
  pair.relay.b.close("process killed");
  await failed;
  return performance.now() - started;
}

const suite: BenchSuite = async (options: BenchOptions): Promise<BenchRow[]> => {
  const total = options.quick ? 128 * MiB : 1024 * MiB;
  const source = randomBytes(4 * MiB);
  const rows: BenchRow[] = [];
  const size = `${total / MiB} MiB`;
  const dropMs = await peerDropMs();
  for (const chunk of [64 * 1024, 1024]) {
    const volume = chunk === 1024 ? total / 8 : total;
    const base = await baselineMBps(volume, chunk, source);
    const mux = await tunnelMBps(volume, chunk, source);
    rows.push({
      group: "tunnel mux",
      name: `one channel, ${chunk / 1024} KiB writes, ${volume / MiB} MiB one way`,
      value: mux,
      unit: "MB/s",
      baseline: { name: "in-memory PassThrough", value: base },
      note: `in-memory relay with SlowClient limits; MB = MiB; the baseline passes references without copying`,
    });
  }
  rows.push({
    group: "tunnel mux",
    name: `codec only: encode + decode 64 KiB DATA frames, ${size}`,
    value: codecMBps(total, source),
    unit: "MB/s",
    note: "one payload copy + CRC-32 on each side; the multiplexer's ceiling",
  });
  const perChannel = options.quick ? 256 * 1024 : 2 * MiB;
  const fair = await fairness(200, perChannel, source);
  rows.push(
    {
      group: "tunnel mux",
      name: `200 channels x ${perChannel / 1024} KiB, aggregate`,
      value: fair.aggregateMBps,
      unit: "MB/s",
    },
    {
      group: "tunnel mux",
      name: "200 channels: least/most bytes delivered when the first channel finished",
      value: fair.minShare * 100,
      unit: "%",
      target: "close to 100%",
      note: `first channel done at ${fair.firstFinish.toFixed(2)} s, last at ${fair.lastFinish.toFixed(2)} s`,
    },
    {
      group: "tunnel mux",
      name: "200 channels: deepest relay queue",
      value: fair.maxQueuedMessages,
      unit: "messages",
      target: "well under 1000 (SlowClient)",
    },
  );
  rows.push({
    group: "tunnel mux",
    name: "peer relay connection drops -> service channel errors",
    value: dropMs,
    unit: "ms",
    target: "<= 5000 ms",
    note: "in-memory relay closes the peer at once; end to end this waits for the control plane's disconnected handling",
  });
  return rows;
};

export default suite;
