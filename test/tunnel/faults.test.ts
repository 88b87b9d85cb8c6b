import { once } from "node:events";
import {
  type FaultAction,
  type TunnelChannel,
  type TunnelCloseInfo,
  TunnelError,
  TunnelSession,
  createMemoryRelay,
  encodeFrame,
} from "../../client/tunnel";
import { DEVICE_HELLO_DEFAULTS, RawPeer, createTunnel, randomBytes, writeChunked } from "./helpers";

jest.setTimeout(15_000);

const DATA = 0x13;
const WINDOW = 0x05;
const PING = 0x03;
const PONG = 0x04;

/** Applies `action` to the `nth` frame of type `type` sent by `side`; everything else passes. */
function faultOn(side: "a" | "b", type: number, nth: number, action: FaultAction) {
  let seen = 0;
  return (frame: Buffer, from: "a" | "b"): FaultAction =>
    from === side && frame[4] === type && ++seen === nth ? action : "pass";
}

function collect(channel: TunnelChannel): { bytes: Buffer[]; error: Promise<TunnelError> } {
  const bytes: Buffer[] = [];
  channel.on("data", (chunk: Buffer) => bytes.push(chunk));
  const error = once(channel, "error").then(([err]) => err as TunnelError);
  return { bytes, error };
}

function rawDevice(options: { handshakeTimeoutInMs?: number } = {}) {
  const relay = createMemoryRelay();
  const device = new TunnelSession({ role: "device", transport: relay.b, ...options });
  const closed = once(device, "close").then(([info]) => info as TunnelCloseInfo);
  device.on("channel", (channel) => channel.on("error", () => undefined));
  device.start();
  return { relay, device, closed, raw: new RawPeer(relay.a) };
}

async function handshakeAsService(raw: RawPeer): Promise<void> {
  raw.send({ type: "hello", minVersion: 1, maxVersion: 1, ...DEVICE_HELLO_DEFAULTS });
  await raw.next("hello");
}

describe("tunnel faults: never deliver wrong data, close with the reason", () => {
  it.each<[FaultAction, "a" | "b", number, string]>([
    ["drop", "a", DATA, "SequenceError"],
    ["duplicate", "a", DATA, "SequenceError"],
    ["delay", "a", DATA, "SequenceError"],
    ["corrupt", "a", DATA, "FrameCorrupt"],
    ["truncate", "a", DATA, "FrameCorrupt"],
    ["corrupt", "b", WINDOW, "FrameCorrupt"],
    ["drop", "b", WINDOW, "SequenceError"],
    ["delay", "b", WINDOW, "SequenceError"],
  ])("%s of a frame from %s (type %i) closes with %s", async (action, side, type, reason) => {
    // A lost last WINDOW leaves the sender without credit and the stream silent: the idle keepalive's
    // PING/PONG is then the next frame, and its sequence number reveals the gap.
    const keepalive = { keepaliveIntervalInMs: 50, keepaliveTimeoutInMs: 5000 };
    const t = createTunnel({
      relay: { fault: faultOn(side, type, side === "a" ? 20 : 3, action) },
      service: keepalive,
      device: keepalive,
    });
    const incoming = once(t.device, "channel") as Promise<[TunnelChannel]>;
    const service = await t.service.openChannel();
    const [device] = await incoming;
    const got = collect(device);
    service.on("error", () => undefined);
    const data = randomBytes(8 * 1024 * 1024);
    void writeChunked(service, data, [65536, 1000]).catch(() => undefined);

    const [serviceInfo, deviceInfo] = await Promise.all([t.serviceClosed, t.deviceClosed]);
    const detector = side === "a" ? deviceInfo : serviceInfo;
    const other = side === "a" ? serviceInfo : deviceInfo;
    expect(detector).toMatchObject({ reason, byPeer: false });
    expect(other).toMatchObject({ reason, byPeer: true });
    expect((await got.error).code).toBe(reason);
    // Whatever arrived before the fault is exactly the start of what was sent.
    const received = Buffer.concat(got.bytes);
    expect(received.length).toBeLessThan(data.length);
    expect(received.equals(data.subarray(0, received.length))).toBe(true);
  });

  it("closes on random garbage and on frames out of sequence, without throwing", async () => {
    for (const inject of [
      (send: (b: Buffer) => void) => send(randomBytes(100)),
      (send: (b: Buffer) => void) => send(Buffer.alloc(3)),
      (send: (b: Buffer) => void) => send(encodeFrame(999, { type: "ping", nonce: 1 })),
    ]) {
      const t = createTunnel();
      await t.service.waitReady();
      inject((b) => t.relay.a.send(b));
      const info = await t.deviceClosed;
      expect(["FrameCorrupt", "SequenceError"]).toContain(info.reason);
      expect((await t.serviceClosed).byPeer).toBe(true);
    }
  });

  it("closes with FlowControlError when the peer sends beyond its credit", async () => {
    const { raw, closed } = rawDevice();
    await handshakeAsService(raw);
    raw.send({ type: "open", channel: 1, label: "" });
    await raw.next("accept");
    // Nobody reads the channel, so the 512 KiB channel window is never returned.
    for (let i = 0; i < 9; i++) raw.send({ type: "data", channel: 1, payload: Buffer.alloc(65536) });
    expect((await closed).reason).toBe("FlowControlError");
    expect((await raw.next("close")).reason).toBe("FlowControlError");
  });

  it("closes with FlowControlError when the peer returns more credit than its window", async () => {
    const relay = createMemoryRelay();
    const service = new TunnelSession({ role: "service", transport: relay.a });
    const closed = once(service, "close").then(([info]) => info as TunnelCloseInfo);
    service.start();
    const raw = new RawPeer(relay.b);
    await raw.next("hello");
    raw.send({ type: "hello", minVersion: 1, maxVersion: 1, ...DEVICE_HELLO_DEFAULTS });
    raw.send({ type: "window", streamBytes: 1, streamMessages: 0, channels: [] });
    expect((await closed).reason).toBe("FlowControlError");
  });

  it("closes with ProtocolError on a frame for a channel that was never opened", async () => {
    const { raw, closed } = rawDevice();
    await handshakeAsService(raw);
    raw.send({ type: "data", channel: 5, payload: Buffer.from("x") });
    expect((await closed).reason).toBe("ProtocolError");
  });

  it("closes with ProtocolError when channel ids do not increase", async () => {
    const { raw, closed } = rawDevice();
    await handshakeAsService(raw);
    raw.send({ type: "open", channel: 2, label: "" });
    raw.send({ type: "open", channel: 2, label: "" });
    expect((await closed).message).toMatch(/ids must increase/);
  });
});

describe("tunnel handshake", () => {
  it("keeps the device silent until the service's HELLO, even when it gives up", async () => {
    const { relay, closed, raw } = rawDevice({ handshakeTimeoutInMs: 100 });
    expect((await closed).reason).toBe("HandshakeTimeout");
    expect(raw.received).toEqual([]);
    expect(relay.b.closed).toBe(true);
  });

  it("the service speaks first and times out when no device answers", async () => {
    const relay = createMemoryRelay();
    const service = new TunnelSession({ role: "service", transport: relay.a, handshakeTimeoutInMs: 100 });
    const raw = new RawPeer(relay.b);
    service.start();
    expect((await raw.next("hello")).maxVersion).toBe(1);
    await expect(service.waitReady()).rejects.toMatchObject({ code: "HandshakeTimeout" });
    await expect(service.openChannel()).rejects.toMatchObject({ code: "HandshakeTimeout" });
  });

  it("the device refuses a service with no common version", async () => {
    const { raw, closed } = rawDevice();
    raw.send({ type: "hello", minVersion: 2, maxVersion: 3, ...DEVICE_HELLO_DEFAULTS });
    const close = await raw.next("close");
    expect(close.reason).toBe("VersionMismatch");
    expect(close.message).toMatch(/2\.\.3/);
    expect((await closed).reason).toBe("VersionMismatch");
  });

  it("the service refuses a device answering with a version it does not speak", async () => {
    const relay = createMemoryRelay();
    const service = new TunnelSession({ role: "service", transport: relay.a });
    service.start();
    const raw = new RawPeer(relay.b);
    await raw.next("hello");
    raw.send({ type: "hello", minVersion: 2, maxVersion: 2, ...DEVICE_HELLO_DEFAULTS });
    await expect(service.waitReady()).rejects.toMatchObject({ code: "VersionMismatch" });
    expect((await raw.next("close")).reason).toBe("VersionMismatch");
  });

  it("the device answers a newer service's range with the version they share", async () => {
    const { raw, device } = rawDevice();
    raw.send({ type: "hello", minVersion: 1, maxVersion: 7, ...DEVICE_HELLO_DEFAULTS });
    expect(await raw.next("hello")).toMatchObject({ minVersion: 1, maxVersion: 1 });
    device.close();
  });

  it("rejects anything but HELLO first", async () => {
    const { raw, closed } = rawDevice();
    raw.send({ type: "ping", nonce: 1 });
    expect(await closed).toMatchObject({ reason: "ProtocolError", message: "expected HELLO, got PING" });
  });
});

describe("tunnel liveness", () => {
  it("ends the other side's channels with an error when a peer's relay connection drops", async () => {
    const t = createTunnel();
    const incoming = once(t.device, "channel") as Promise<[TunnelChannel]>;
    const service = await t.service.openChannel();
    (await incoming)[0].on("error", () => undefined);
    const failed = once(service, "error") as Promise<[TunnelError]>;
    void writeChunked(service, randomBytes(4 * 1024 * 1024), [65536]).catch(() => undefined);
    t.relay.b.close("process killed");
    const [err] = await failed;
    expect(err.code).toBe("TransportClosed");
    expect(await t.serviceClosed).toMatchObject({ reason: "TransportClosed", byPeer: false });
  });

  it("declares a silent peer dead after the keepalive timeout", async () => {
    const t = createTunnel({
      relay: { closePeerOnDisconnect: false },
      service: { keepaliveIntervalInMs: 30, keepaliveTimeoutInMs: 200 },
    });
    const incoming = once(t.device, "channel") as Promise<[TunnelChannel]>;
    const service = await t.service.openChannel();
    (await incoming)[0].on("error", () => undefined);
    const failed = once(service, "error") as Promise<[TunnelError]>;
    // The device's connection vanishes without anyone telling the service.
    t.relay.b.close("network gone");
    expect((await failed)[0].code).toBe("KeepaliveTimeout");
    expect((await t.serviceClosed).reason).toBe("KeepaliveTimeout");
  });

  it("keeps an idle stream alive with PING/PONG", async () => {
    let pings = 0;
    let pongs = 0;
    let wake: () => void = () => undefined;
    const enough = new Promise<void>((resolve) => (wake = resolve));
    const t = createTunnel({
      relay: {
        fault: (frame) => {
          if (frame[4] === PING) pings++;
          if (frame[4] === PONG) pongs++;
          if (pings >= 5 && pongs >= 5) wake();
          return "pass";
        },
      },
      service: { keepaliveIntervalInMs: 20, keepaliveTimeoutInMs: 120 },
      device: { keepaliveIntervalInMs: 20, keepaliveTimeoutInMs: 120 },
    });
    await t.service.waitReady();
    await enough;
    expect(t.service.closed || t.device.closed).toBe(false);
    await t.shutdown();
  });
});

describe("tunnel transport misbehaviour", () => {
  it("closes with TransportClosed when a transport's send throws, instead of crashing", async () => {
    const t = createTunnel();
    await t.service.waitReady();
    const incoming = once(t.device, "channel") as Promise<[TunnelChannel]>;
    const channel = await t.service.openChannel();
    (await incoming)[0].on("error", () => undefined);
    channel.on("error", () => undefined);
    t.relay.a.send = () => {
      throw new Error("socket not open");
    };
    channel.write("x");
    expect(await t.serviceClosed).toMatchObject({
      reason: "TransportClosed",
      message: expect.stringContaining("socket not open"),
    });
    t.device.close();
  });

  it("closes with ProtocolError on a message that is not bytes", async () => {
    const t = createTunnel();
    await t.device.waitReady();
    t.relay.b.emit("message", "not a frame");
    expect(await t.deviceClosed).toMatchObject({
      reason: "ProtocolError",
      message: "relay message is not binary data",
    });
    await t.shutdown();
  });
});
