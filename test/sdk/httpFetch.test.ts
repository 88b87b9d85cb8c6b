/**
 * `fetch` to a device by ID through the SDK's undici dispatcher: streams are reused across many
 * requests, large bodies stream both ways in bounded memory, failures name their cause, and undici
 * is loaded only by callers of fetch.
 */
import { createHash } from "node:crypto";
import { type Duplex, Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createDeviceFetch } from "../../client/sdk/service";
import { webDevice } from "./httpDevice";
import { Recorder, withDeadline } from "../helpers/events";
import { scaled, useTarget } from "./target";

const stack = useTarget();

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;
const BODY = 32 * MB;

// A full collection before each sample, so the figure is what is still referenced, not garbage.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/**
 * Live heap plus Buffer memory, after full collections. V8 frees Buffer memory on a background task
 * after a collection, and on a loaded machine that task can lag several turns. Garbage only ever
 * adds to a reading, so the figure is the lowest of several collections a turn apart.
 */
async function liveBytes(): Promise<number> {
  let lowest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 8; round++) {
    gc();
    await new Promise((r) => setImmediate(r));
    const m = process.memoryUsage();
    lowest = Math.min(lowest, m.heapUsed + m.arrayBuffers);
  }
  return lowest;
}

/**
 * The largest rise of liveBytes() over samples taken while streaming (every few MB), each against
 * the lowest before it: a body held anywhere would grow with each sample. Only rises count, since
 * live memory also falls while a test runs (code and state from earlier tests collected: a CI run
 * read a 21 MB spread that was the heap shrinking). The first sample is taken before the transfer.
 */
async function memoryGrowth() {
  let low = await liveBytes();
  let rise = 0;
  return {
    sample: async () => {
      const now = await liveBytes();
      rise = Math.max(rise, now - low);
      low = Math.min(low, now);
    },
    get mb() {
      return Math.round((rise / MB) * 10) / 10;
    },
  };
}

/** Bytes a sender has produced that its receiver has not yet seen, at most. */
class Lead {
  private ahead = 0;
  private most = 0;
  produced(bytes: number): undefined {
    this.ahead += bytes;
    this.most = Math.max(this.most, this.ahead);
    return undefined;
  }
  consumed(bytes: number): void {
    this.ahead -= bytes;
  }
  get mb(): number {
    return Math.round((this.most / MB) * 10) / 10;
  }
}

/** 32 MB in fresh 64 KB chunks: a body held anywhere would stay referenced and show in the spread. */
async function* chunks(onChunk: (i: number) => Promise<void> | undefined): AsyncGenerator<Buffer> {
  for (let i = 0; i < BODY / CHUNK; i++) {
    await onChunk(i);
    yield Buffer.alloc(CHUNK, i & 0xff);
  }
}

/** The SHA-256 of chunks(), computed without allocating them (no garbage before the measurement). */
function expectedDigest(): string {
  const hash = createHash("sha256");
  const chunk = Buffer.alloc(CHUNK);
  for (let i = 0; i < BODY / CHUNK; i++) hash.update(chunk.fill(i & 0xff));
  return hash.digest("hex");
}

describe("createDeviceFetch", () => {
  it("200 requests, 50 at a time, share one stream", async () => {
    const s = stack();
    const device = await webDevice(s, "Fetch-Many", (req, res) => res.end(`device says ${req.url}`));
    const deviceFetch = createDeviceFetch(s.client(), { deviceId: device.deviceId, streamName: "web" });
    let opened = 0;
    deviceFetch.dispatcher.pool.on("opened", () => opened++);
    try {
      const texts: string[] = [];
      for (let batch = 0; batch < 4; batch++) {
        const replies = await Promise.all(
          Array.from({ length: 50 }, async (_, i) => {
            const res = await deviceFetch(`http://device/r${batch * 50 + i}`);
            expect(res.status).toBe(200);
            return res.text();
          }),
        );
        texts.push(...replies);
      }
      expect(texts).toEqual(Array.from({ length: 200 }, (_, i) => `device says /r${i}`));
      expect(opened).toBe(1);
      expect(device.streams.items).toHaveLength(1);
      // Keep-alive connections are reused too (undici may replace one that is just finishing).
      expect(device.connections.items.length).toBeLessThan(100);
    } finally {
      await deviceFetch.close();
      await device.close();
    }
  });

  it("32 MB request (undici request) and response (fetch) bodies stream in bounded memory", async () => {
    const s = stack();
    // How far each sender runs ahead of its receiver: flow control end to end keeps that to the
    // windows and buffers between them, where a body buffered anywhere lets the sender finish first.
    const up = new Lead();
    const down = new Lead();
    const device = await webDevice(s, "Fetch-Big", (req, res) => {
      if (req.method === "POST") {
        const hash = createHash("sha256");
        let bytes = 0;
        req.on("data", (c: Buffer) => ((bytes += c.length), up.consumed(c.length), hash.update(c)));
        req.on("end", () => res.end(JSON.stringify({ bytes, sha256: hash.digest("hex") })));
        return;
      }
      if (req.url !== "/download") return void res.end("warm");
      res.writeHead(200, { "content-length": BODY });
      Readable.from(chunks(() => down.produced(CHUNK))).pipe(res);
    });
    const deviceFetch = createDeviceFetch(s.client(), { deviceId: device.deviceId, streamName: "web" });
    try {
      expect(await (await deviceFetch("http://device/warm")).text()).toBe("warm");
      const digest = expectedDigest();

      // Uploads go through undici's request() on the same dispatcher: fetch itself keeps a streamed
      // request body referenced until the request ends (nodejs/undici#4058, docs/sdk.md).
      const upMemory = await memoryGrowth();
      const res = await deviceFetch.dispatcher.request({
        origin: "http://device",
        path: "/upload",
        method: "POST",
        body: Readable.from(
          chunks((i) => (up.produced(CHUNK), i % 64 === 0 ? upMemory.sample() : undefined)),
        ),
      });
      expect(await res.body.json()).toEqual({ bytes: BODY, sha256: digest });

      const downMemory = await memoryGrowth();
      const download = await deviceFetch("http://device/download");
      const hash = createHash("sha256");
      let bytes = 0;
      let sinceSample = 0;
      for await (const c of download.body as AsyncIterable<Uint8Array>) {
        hash.update(c);
        bytes += c.length;
        down.consumed(c.length);
        sinceSample += c.length;
        if (sinceSample >= 4 * MB) {
          sinceSample = 0;
          await downMemory.sample();
        }
      }
      expect({ bytes, sha256: hash.digest("hex") }).toEqual({ bytes: BODY, sha256: digest });
      console.log(
        `32 MB through the dispatcher: sender ahead of receiver by at most ${up.mb} MB up, ` +
          `${down.mb} MB down; live memory grew by at most ${upMemory.mb} MB up, ${downMemory.mb} MB down`,
      );
      // Between the ends: the stream's window (2 MiB), the channels' and sockets' write buffers and
      // the kernel's loopback buffers, so a few MB (measured: 0.5 up, 7 down); a body held anywhere
      // puts the whole 32 MB between them.
      expect(up.mb).toBeLessThan(16);
      expect(down.mb).toBeLessThan(16);
      // Both ends run in this process, so a body kept referenced anywhere (client, tunnel, device)
      // shows in live memory even after it has been passed on; what is in flight is a few MB, held
      // in several copies at once (sender, relay in and out, receiver).
      expect(upMemory.mb).toBeLessThan(16);
      expect(downMemory.mb).toBeLessThan(16);
    } finally {
      await deviceFetch.close();
      await device.close();
    }
  }, 240_000);

  it("a failure names its cause (fetch's TypeError, the StreamsError as its cause); https is refused", async () => {
    const s = stack();
    const offline = s.deviceId("Fetch-Offline");
    await s.registerDevice(offline);
    const deviceFetch = createDeviceFetch(s.client(), { deviceId: offline, streamName: "web" });
    try {
      const err = (await deviceFetch("http://device/").then(
        () => undefined,
        (e: unknown) => e,
      )) as TypeError & { cause?: unknown };
      expect(err).toBeInstanceOf(TypeError);
      expect(err.cause).toMatchObject({ name: "StreamsError", code: "DeviceNotOnline" });
      await expect(deviceFetch("https://device/")).rejects.toMatchObject({
        cause: { message: expect.stringMatching(/https: is not supported/) as unknown },
      });
    } finally {
      await deviceFetch.close();
    }
  });

  it("a stream ended mid-response fails that fetch with the cause; the next fetch opens a new stream", async () => {
    const s = stack();
    const device = await webDevice(s, "Fetch-Torn", (req, res) => {
      if (req.url === "/hang") res.write("partial");
      else res.end("fine");
    });
    const deviceFetch = createDeviceFetch(s.client(), { deviceId: device.deviceId, streamName: "web" });
    try {
      const res = await deviceFetch("http://device/hang");
      const reader = res.body!.getReader();
      await reader.read();
      await device.streams.items[0]!.close("GoingAway", "device restarting");
      const err = (await reader.read().then(
        () => undefined,
        (e: unknown) => e,
      )) as Error & { cause?: unknown };
      expect(err).toBeInstanceOf(Error);
      expect(err.cause ?? err).toMatchObject({ name: "TunnelError", code: "GoingAway" });
      expect(await (await deviceFetch("http://device/")).text()).toBe("fine");
      expect(device.streams.items).toHaveLength(2);
    } finally {
      await deviceFetch.close();
      await device.close();
    }
  });

  it("a keep-alive connection the device's web server closes while idle is not reused", async () => {
    const s = stack();
    const device = await webDevice(s, "Fetch-KeepAlive", (req, res) => {
      // No `Keep-Alive: timeout=` hint: with one this short undici would not reuse the connection.
      res.setHeader("Connection", "keep-alive");
      res.end(`device says ${req.url}`);
    });
    // This test is about the server's idle timeout, so it sets it short.
    device.server.keepAliveTimeout = 200;
    const deviceFetch = createDeviceFetch(s.client(), { deviceId: device.deviceId, streamName: "web" });
    const pool = deviceFetch.dispatcher.pool;
    const channels = new Recorder<Duplex>();
    const openChannel = pool.openChannel.bind(pool);
    pool.openChannel = (label) => openChannel(label).then((c) => (channels.push(c), c));
    try {
      expect(await (await deviceFetch("http://device/a")).text()).toBe("device says /a");
      const [channel] = channels.items;
      // undici destroys the connection with "other side closed", which it handles itself.
      const channelClosed = new Promise((resolve) =>
        channel!.closed ? resolve(undefined) : channel!.once("close", resolve),
      );
      await withDeadline(channelClosed, scaled(15_000), "the service side's channel closed");
      expect(await (await deviceFetch("http://device/b")).text()).toBe("device says /b");
      expect(channels.items).toHaveLength(2);
      expect(device.connections.items).toHaveLength(2);
    } finally {
      await deviceFetch.close();
      await device.close();
    }
  });

  it("undici is loaded by the first fetch, not by importing the SDK", () => {
    jest.isolateModules(() => {
      let loaded = false;
      jest.doMock("undici", () => {
        loaded = true;
        return jest.requireActual<object>("undici");
      });
      const sdk = jest.requireActual<typeof import("../../client/sdk/service")>("../../client/sdk/service");
      expect(loaded).toBe(false);
      const deviceFetch = sdk.createDeviceFetch(stack().client(), { deviceId: "x", streamName: "web" });
      expect(loaded).toBe(true);
      void deviceFetch.close();
    });
  });
});
