import { once } from "node:events";
import type { Duplex } from "node:stream";
import { crc32 } from "node:zlib";
import {
  FEATURES,
  type Frame,
  type TunnelSessionOptions,
  createMemoryRelay,
  decodeFrame,
  encodeFrame,
  TunnelSession,
} from "../../client/tunnel";
import {
  DEVICE_HELLO_DEFAULTS,
  RawPeer,
  type Tunnel,
  createTunnel,
  echoChannels,
  whenClosed,
} from "./helpers";

type Side = Partial<Omit<TunnelSessionOptions, "role" | "transport">>;

/** A tunnel whose relay records every channel frame each side sends (a counting relay). */
function countingTunnel(service: Side = {}, device: Side = {}) {
  const sent: Record<"service" | "device", Frame[]> = { service: [], device: [] };
  const tunnel = createTunnel({
    service,
    device,
    relay: {
      fault: (raw, from) => {
        const decoded = decodeFrame(raw);
        if (decoded.ok && "channel" in decoded.frame)
          sent[from === "a" ? "service" : "device"].push(decoded.frame);
        return "pass";
      },
    },
  });
  echoChannels(tunnel.device);
  return { tunnel, sent, types: (side: keyof typeof sent) => sent[side].map((f) => f.type) };
}

/** One short connection as `forward` makes it: early open, 64 B echoed, half-closes both ways. */
async function churnOnce(tunnel: Tunnel): Promise<void> {
  const incoming = once(tunnel.device, "channel") as Promise<[Duplex]>;
  const channel = await tunnel.service.openChannel("c", undefined, true);
  const echoed = once(channel, "data");
  channel.write(Buffer.alloc(64, 1));
  expect(((await echoed) as [Buffer])[0].length).toBe(64);
  channel.end();
  channel.resume();
  const [deviceChannel] = await incoming;
  // Each side's channel closes once its FIN is out and the peer's is in: the channel is finished.
  await Promise.all([whenClosed(channel), whenClosed(deviceChannel)]);
  expect(tunnel.service.openChannelCount).toBe(0);
  expect(tunnel.device.openChannelCount).toBe(0);
}

describe("tunnel implicit accept (docs/tunnel-protocol.md §4 features, §5)", () => {
  let tunnel: Tunnel | undefined;
  afterEach(async () => {
    await tunnel?.shutdown();
    tunnel = undefined;
  });

  it("a short connection costs 5 channel frames: no ACCEPT, and the OPEN says so", async () => {
    const counted = countingTunnel();
    tunnel = counted.tunnel;
    await churnOnce(tunnel);
    expect(tunnel.service.implicitAccept).toBe(true);
    expect(counted.types("service")).toEqual(["open", "data", "fin"]);
    expect(counted.types("device")).toEqual(["data", "fin"]);
    expect(counted.sent.service[0]).toMatchObject({ type: "open", noAccept: true });
    // The device's first frame stood for the ACCEPT.
    expect(tunnel.service.stats.channelsOpened).toBe(1);
    expect(tunnel.device.stats.channelsOpened).toBe(1);
  });

  it("openChannel without early data still gets its ACCEPT", async () => {
    const counted = countingTunnel();
    tunnel = counted.tunnel;
    const channel = await tunnel.service.openChannel("c");
    expect(counted.types("device")).toEqual(["accept"]);
    expect(counted.sent.service[0]).toEqual({ type: "open", channel: 1, label: "c" });
    channel.destroy();
  });

  it("today's device (early data only): the new service sends a plain OPEN and gets its ACCEPT", async () => {
    const counted = countingTunnel({}, { implicitAccept: false });
    tunnel = counted.tunnel;
    await churnOnce(tunnel);
    expect(tunnel.service.earlyData).toBe(true);
    expect(tunnel.service.implicitAccept).toBe(false);
    expect(counted.sent.service[0]).toEqual({ type: "open", channel: 1, label: "c" });
    expect(counted.types("device")).toEqual(["accept", "data", "fin"]);
  });

  it("today's service (early data only): a new device answers its plain OPEN with ACCEPT", async () => {
    const counted = countingTunnel({ implicitAccept: false }, {});
    tunnel = counted.tunnel;
    await churnOnce(tunnel);
    expect(tunnel.device.implicitAccept).toBe(false);
    expect(counted.types("service")).toEqual(["open", "data", "fin"]);
    expect(counted.types("device")).toEqual(["accept", "data", "fin"]);
  });

  it("a REFUSE still errors a channel opened without ACCEPT, and the next channel works", async () => {
    tunnel = createTunnel({
      device: {
        acceptChannel: ({ label }) =>
          label === "no" ? { accept: false, reason: "Refused" } : { accept: true },
      },
    });
    echoChannels(tunnel.device);
    const refused = await tunnel.service.openChannel("no", undefined, true);
    refused.write("x");
    const [err] = (await once(refused, "error")) as [Error & { code?: string }];
    expect(err.code).toBe("Refused");
    expect(tunnel.service.openChannelCount).toBe(0);
    await churnOnce(tunnel);
    expect(tunnel.service.stats.channelsOpened).toBe(1);
  });

  it("a device closes with ProtocolError on an OPEN asking for no ACCEPT when that was not negotiated", async () => {
    const relay = createMemoryRelay();
    const device = new TunnelSession({ role: "device", transport: relay.b });
    const closed = once(device, "close");
    device.start();
    const raw = new RawPeer(relay.a);
    // A HELLO with early data only.
    raw.send({
      type: "hello",
      minVersion: 1,
      maxVersion: 1,
      ...DEVICE_HELLO_DEFAULTS,
      features: FEATURES.earlyData,
    });
    await raw.next("hello");
    raw.send({ type: "open", channel: 1, label: "", noAccept: true });
    const [info] = (await closed) as [{ reason: string; message: string }];
    expect(info.reason).toBe("ProtocolError");
    expect(info.message).toMatch(/no ACCEPT/);
  });

  it("codec: the OPEN flag round-trips; on any other frame, or any other flag, it is a ProtocolError", () => {
    const open = { type: "open" as const, channel: 3, label: "l", noAccept: true };
    const encoded = encodeFrame(7, open);
    expect(encoded[5]).toBe(1);
    expect(decodeFrame(encoded)).toEqual({ ok: true, seq: 7, frame: open });
    expect(encodeFrame(7, { type: "open", channel: 3, label: "l" })[5]).toBe(0);
    const reflag = (frame: Buffer, flags: number): Buffer => {
      const copy = Buffer.from(frame);
      copy[5] = flags;
      // Re-sealed: the CRC covers the flags, and the test is about the flags, not corruption.
      copy.writeUInt32BE(crc32(copy.subarray(4)), 0);
      return copy;
    };
    expect(decodeFrame(reflag(encoded, 2))).toMatchObject({ ok: false, error: { code: "ProtocolError" } });
    const fin = encodeFrame(1, { type: "fin", channel: 3 });
    expect(decodeFrame(reflag(fin, 1))).toMatchObject({ ok: false, error: { code: "ProtocolError" } });
  });
});
