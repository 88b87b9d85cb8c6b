import { once } from "node:events";
import type { Readable } from "node:stream";
import { DEFAULT_TUNNEL_OPTIONS, type TunnelChannel } from "../../client/tunnel";
import { createTunnel, digest, echoChannels, randomBytes, sha256, writeChunked } from "./helpers";

jest.setTimeout(30_000);

const WINDOW = DEFAULT_TUNNEL_OPTIONS.channelWindowBytes;

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Reads `stream` a few bytes per event-loop turn: a deliberately slow consumer, without timers. */
async function slowDigest(stream: Readable, bytesPerTurn: number, maxBuffered: { value: number }) {
  const chunks: Buffer[] = [];
  let ended = false;
  stream.once("end", () => (ended = true));
  while (!ended) {
    maxBuffered.value = Math.max(maxBuffered.value, stream.readableLength);
    const chunk = stream.read(Math.min(bytesPerTurn, stream.readableLength || bytesPerTurn)) as Buffer | null;
    if (chunk) chunks.push(chunk);
    else if (!ended) await Promise.race([once(stream, "readable"), once(stream, "end")]);
    await turn();
  }
  return sha256(Buffer.concat(chunks));
}

describe("tunnel concurrency and backpressure", () => {
  it("runs 50 echo channels at once, one read slowly, under the relay's SlowClient limit", async () => {
    // deliveryBatch models a relay receiver that reads 16 messages per turn, so queues can build up.
    const t = createTunnel({ relay: { deliveryBatch: 16 } });
    echoChannels(t.device);
    const size = 1024 * 1024;
    const channels = await Promise.all(Array.from({ length: 50 }, (_, i) => t.service.openChannel(`c${i}`)));
    const slowBuffered = { value: 0 };
    const results = await Promise.all(
      channels.map(async (channel, i) => {
        const data = randomBytes(size + i * 1013);
        const [, got] = await Promise.all([
          writeChunked(channel, data, [65537, 7, 4096]),
          i === 7 ? slowDigest(channel, 2048, slowBuffered) : digest(channel).then((d) => d.sha256),
        ]);
        return got === sha256(data);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(t.service.closed || t.device.closed).toBe(false);
    expect(t.relay.a.closed || t.relay.b.closed).toBe(false);
    for (const side of [t.relay.a, t.relay.b]) {
      // Well under SlowClient's 1,000 messages / 4 MiB whatever the channel count.
      expect(side.stats.maxQueuedMessages).toBeLessThanOrEqual(300);
      expect(side.stats.maxQueuedBytes).toBeLessThanOrEqual(2.5 * 1024 * 1024);
    }
    expect(slowBuffered.value).toBeLessThanOrEqual(WINDOW);
    expect(t.service.stats.bytesReceived).toBe(t.device.stats.bytesSent);
    await t.shutdown();
  });

  it("a reader that stops holds its writer at one channel window, then the transfer completes", async () => {
    const t = createTunnel();
    const incoming = once(t.device, "channel") as Promise<[TunnelChannel]>;
    const service = await t.service.openChannel();
    const [device] = await incoming;
    const data = randomBytes(8 * 1024 * 1024);
    let written = false;
    const writing = writeChunked(service, data, [100_000]).then(() => (written = true));
    while (device.readableLength < WINDOW) await once(device, "readable");
    // Give the writer many turns to push more if the credit let it; it must not.
    for (let i = 0; i < 50; i++) await turn();
    expect(device.readableLength).toBe(WINDOW);
    expect(t.service.stats.bytesSent).toBe(WINDOW);
    expect(written).toBe(false);
    // The sender's own buffering is bounded too: its write buffer plus the chunk being framed.
    expect(service.writableLength).toBeLessThanOrEqual(service.writableHighWaterMark + 100_000);
    const got = digest(device);
    await writing;
    expect((await got).sha256).toBe(sha256(data));
    await t.shutdown();
  });

  it("shares the stream fairly: a busy channel does not starve a small one", async () => {
    const t = createTunnel();
    const devices: TunnelChannel[] = [];
    t.device.on("channel", (channel) => devices.push(channel));
    const bulk = await t.service.openChannel("bulk");
    const small = await t.service.openChannel("small");
    const order: string[] = [];
    const ends = devices.map((d) => digest(d).then(() => order.push(d.label)));
    void writeChunked(bulk, randomBytes(32 * 1024 * 1024), [65536]);
    await turn();
    small.end(randomBytes(64 * 1024));
    await Promise.all(ends);
    expect(order).toEqual(["small", "bulk"]);
    await t.shutdown();
  });
});
