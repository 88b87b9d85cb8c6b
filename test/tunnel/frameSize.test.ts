import { type TunnelChannel, decodeFrame, HEADER_SIZE } from "../../client/tunnel";
import { type Tunnel, createTunnel, digest, randomBytes, sha256, writeChunked } from "./helpers";

jest.setTimeout(30_000);

const BILLING_UNIT = 2048;
/** The largest payload a side may announce: a whole frame of 256 KiB. */
const LARGE = { maxDataPayload: 256 * 1024 - HEADER_SIZE };

let tunnel: Tunnel | undefined;
afterEach(async () => {
  await tunnel?.shutdown();
  tunnel = undefined;
});

/** Sends `data` service → device over a tunnel with these device options; the DATA frame sizes seen. */
async function dataFrameSizes(
  data: Buffer,
  writeSize: number,
  device: { maxDataPayload?: number } = {},
  service: { maxDataPayload?: number } = {},
): Promise<number[]> {
  const sizes: number[] = [];
  tunnel = createTunnel({
    relay: {
      fault: (frame, side) => {
        const decoded = decodeFrame(frame);
        if (side === "a" && decoded.ok && decoded.frame.type === "data") sizes.push(frame.length);
        return "pass";
      },
    },
    device,
    service,
  });
  const incoming = new Promise<TunnelChannel>((resolve) => tunnel!.device.once("channel", resolve));
  const channel = await tunnel.service.openChannel("bulk");
  const got = digest(await incoming);
  await writeChunked(channel, data, [writeSize]);
  expect(await got).toEqual({ sha256: sha256(data), length: data.length });
  return sizes;
}

describe("DATA frame size", () => {
  it("sends frames of exactly 64 KiB by default, 32 whole 2 KB billing units", async () => {
    const sizes = await dataFrameSizes(randomBytes(8 * 1024 * 1024), 1024 * 1024);
    expect((64 * 1024) % BILLING_UNIT).toBe(0);
    expect(Math.max(...sizes)).toBe(64 * 1024);
    expect(sizes.filter((s) => s === 64 * 1024).length).toBeGreaterThan(sizes.length / 2);
  });

  it("sends frames of 256 KiB, whole billing units, where both sides announce that payload", async () => {
    const sizes = await dataFrameSizes(randomBytes(8 * 1024 * 1024), 1024 * 1024, LARGE, LARGE);
    expect((256 * 1024) % BILLING_UNIT).toBe(0);
    expect(Math.max(...sizes)).toBe(256 * 1024);
  });

  it("joins a TCP socket's 64 KiB chunks into frames larger than one chunk", async () => {
    const sizes = await dataFrameSizes(randomBytes(8 * 1024 * 1024), 64 * 1024, LARGE, LARGE);
    expect(Math.max(...sizes)).toBeGreaterThan(64 * 1024 + HEADER_SIZE);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(256 * 1024);
  });

  it("keeps to the smaller payload a peer released before it grants (64 KiB)", async () => {
    const sizes = await dataFrameSizes(
      randomBytes(2 * 1024 * 1024),
      1024 * 1024,
      { maxDataPayload: 64 * 1024 },
      LARGE,
    );
    expect(Math.max(...sizes)).toBe(64 * 1024 + HEADER_SIZE);
  });

  it("sends no more than its own 64 KiB as a service released before it, to a device granting 256 KiB", async () => {
    const sizes = await dataFrameSizes(randomBytes(2 * 1024 * 1024), 1024 * 1024, LARGE, {
      maxDataPayload: 64 * 1024,
    });
    expect(Math.max(...sizes)).toBe(64 * 1024 + HEADER_SIZE);
  });
});

describe("DATA frame size on a shared stream", () => {
  it("keeps frames to 64 KiB while another channel waits to send, and a lone channel gets whole frames again (256 KiB announced)", async () => {
    const frames: { channel: number; size: number }[] = [];
    tunnel = createTunnel({
      relay: {
        fault: (frame, side) => {
          const decoded = decodeFrame(frame);
          if (side === "a" && decoded.ok && decoded.frame.type === "data") {
            frames.push({ channel: decoded.frame.channel, size: frame.length });
          }
          return "pass";
        },
      },
      device: LARGE,
      service: LARGE,
    });
    const incoming: TunnelChannel[] = [];
    const both = new Promise<void>((resolve) =>
      tunnel!.device.on("channel", (c: TunnelChannel) => {
        incoming.push(c);
        if (incoming.length === 2) resolve();
      }),
    );
    const a = await tunnel.service.openChannel("a");
    const b = await tunnel.service.openChannel("b");
    await both;
    const [gotA, gotB] = incoming.map((c) => digest(c));
    const dataA = randomBytes(4 * 1024 * 1024);
    const dataB = randomBytes(8 * 1024 * 1024);
    await Promise.all([writeChunked(a, dataA, [1024 * 1024]), writeChunked(b, dataB, [1024 * 1024])]);
    expect(await gotA).toEqual({ sha256: sha256(dataA), length: dataA.length });
    expect(await gotB).toEqual({ sha256: sha256(dataB), length: dataB.length });
    const ids = [...new Set(frames.map((f) => f.channel))];
    expect(ids).toHaveLength(2);
    const lastOf = (id: number) => frames.map((f) => f.channel).lastIndexOf(id);
    const overlap = Math.min(...ids.map(lastOf));
    // While both were sending, the frames interleaved and none was larger than 64 KiB.
    const shared = frames.slice(0, overlap);
    expect(new Set(shared.map((f) => f.channel)).size).toBe(2);
    expect(Math.max(...shared.map((f) => f.size))).toBeLessThanOrEqual(64 * 1024);
    // The longer transfer, alone at the end, went back to full frames.
    expect(Math.max(...frames.slice(overlap + 1).map((f) => f.size))).toBe(256 * 1024);
  });
});
