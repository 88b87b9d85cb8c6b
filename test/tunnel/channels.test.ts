import { once } from "node:events";
import { type TunnelChannel, TunnelError } from "../../client/tunnel";
import {
  DEVICE_HELLO_DEFAULTS,
  RawPeer,
  type Tunnel,
  createTunnel,
  digest,
  echoChannels,
  randomBytes,
  sha256,
  whenClosed,
  writeChunked,
} from "./helpers";
import { createMemoryRelay, TunnelSession } from "../../client/tunnel";

jest.setTimeout(15_000);

let tunnel: Tunnel | undefined;
afterEach(async () => {
  await tunnel?.shutdown();
  tunnel = undefined;
});

function nextChannel(t: Tunnel): Promise<[TunnelChannel, { id: number; label: string }]> {
  return once(t.device, "channel") as Promise<[TunnelChannel, { id: number; label: string }]>;
}

describe("tunnel channels", () => {
  it("hands the device each channel with its label, and counts payload bytes", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel("ssh #1");
    const [device, request] = await incoming;
    expect(request).toEqual({ id: 1, label: "ssh #1" });
    expect(device.id).toBe(1);
    service.end("ping");
    expect((await digest(device)).length).toBe(4);
    device.end("pong!");
    expect((await digest(service)).length).toBe(5);
    expect(tunnel.service.stats).toMatchObject({ bytesSent: 4, bytesReceived: 5, channelsOpened: 1 });
    expect(tunnel.device.stats).toMatchObject({ bytesSent: 5, bytesReceived: 4, channelsOpened: 1 });
  });

  it("respects half-close from the service: the device still sends after the service's FIN", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel();
    const [device] = await incoming;
    const serviceData = randomBytes(300_000);
    const deviceData = randomBytes(200_000);
    const deviceGot = digest(device);
    await writeChunked(service, serviceData, [65537, 7]);
    expect(await deviceGot).toEqual({ sha256: sha256(serviceData), length: serviceData.length });
    // The device saw the end of input, and its writable side is still open.
    expect(device.writable).toBe(true);
    const serviceGot = digest(service);
    await writeChunked(device, deviceData, [1, 4096]);
    expect(await serviceGot).toEqual({ sha256: sha256(deviceData), length: deviceData.length });
    await Promise.all([whenClosed(service), whenClosed(device)]);
    expect(tunnel.service.openChannelCount).toBe(0);
    expect(tunnel.device.openChannelCount).toBe(0);
  });

  it("respects half-close from the device", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel();
    const [device] = await incoming;
    const serviceGot = digest(service);
    device.end(Buffer.from("banner"));
    expect((await serviceGot).length).toBe(6);
    expect(service.writable).toBe(true);
    const deviceGot = digest(device);
    service.end(Buffer.from("late reply"));
    expect((await deviceGot).length).toBe(10);
  });

  it("transfers 64 MB both ways byte-identical with awkward chunk sizes", async () => {
    tunnel = createTunnel();
    echoChannels(tunnel.device);
    const channel = await tunnel.service.openChannel();
    const data = randomBytes(64 * 1024 * 1024);
    const [, echoed] = await Promise.all([
      writeChunked(channel, data, [65537, 1, 7, 131072, 13]),
      digest(channel),
    ]);
    expect(echoed).toEqual({ sha256: sha256(data), length: data.length });
  });

  it("transfers 16 MB device to service in 1- and 7-byte writes mixed with large ones", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel();
    const [device] = await incoming;
    service.end();
    const data = randomBytes(16 * 1024 * 1024);
    const got = digest(service);
    await writeChunked(device, data, [1, 7, 65537, 1, 1, 7, 250_000]);
    expect(await got).toEqual({ sha256: sha256(data), length: data.length });
  });

  it("credits data consumed by async iteration", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel();
    const [device] = await incoming;
    const data = randomBytes(4 * 1024 * 1024);
    const writing = writeChunked(service, data, [30_000]);
    const chunks: Buffer[] = [];
    for await (const chunk of device) chunks.push(chunk as Buffer);
    await writing;
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(data));
  });

  it("maps destroy(err) to a RESET that errors the peer's channel with the error's code only", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel();
    const [device] = await incoming;
    const failed = once(device, "error") as Promise<[TunnelError]>;
    service.on("error", () => undefined);
    service.destroy(Object.assign(new Error("secret local detail"), { code: "EPIPE" }));
    const [err] = await failed;
    expect(err).toBeInstanceOf(TunnelError);
    expect(err).toMatchObject({ code: "ApplicationError", byPeer: true });
    expect(err.message).toContain("EPIPE");
    expect(err.message).not.toContain("secret");
  });

  it("maps destroy() without an error to Cancelled, and abort(reason) to that reason", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const first = await tunnel.service.openChannel();
    const [firstDevice] = await incoming;
    const cancelled = once(firstDevice, "error") as Promise<[TunnelError]>;
    first.destroy();
    expect((await cancelled)[0].code).toBe("Cancelled");

    const incoming2 = nextChannel(tunnel);
    const second = await tunnel.service.openChannel();
    const [secondDevice] = await incoming2;
    const aborted = once(second, "error") as Promise<[TunnelError]>;
    secondDevice.abort("TargetError", "ECONNRESET");
    const [err] = await aborted;
    expect(err.code).toBe("TargetError");
    expect(err.message).toContain("ECONNRESET");
    // The aborting side sees a plain close, not an error.
    await whenClosed(secondDevice);
    expect(secondDevice.errored).toBeNull();
  });

  it("lets the device refuse a channel with a reason, synchronously or asynchronously", async () => {
    let calls = 0;
    tunnel = createTunnel({
      device: {
        acceptChannel: async ({ label }) => {
          calls++;
          await Promise.resolve();
          return label === "ok"
            ? { accept: true }
            : { accept: false, reason: "TargetUnavailable", message: "nothing listens" };
        },
      },
    });
    await expect(tunnel.service.openChannel("nope")).rejects.toMatchObject({
      name: "TunnelError",
      code: "TargetUnavailable",
      byPeer: true,
    });
    const accepted = await tunnel.service.openChannel("ok");
    expect(accepted.id).toBe(2);
    expect(calls).toBe(2);
    expect(tunnel.device.openChannelCount).toBe(1);
  });

  it("refuses when the decision callback throws", async () => {
    tunnel = createTunnel({
      device: {
        acceptChannel: () => {
          throw new Error("bug");
        },
      },
    });
    await expect(tunnel.service.openChannel()).rejects.toMatchObject({ code: "Refused" });
  });

  it("caps channels per stream: the service respects the advertised cap, and a slot frees on close", async () => {
    tunnel = createTunnel({ device: { maxChannels: 2 } });
    echoChannels(tunnel.device);
    const a = await tunnel.service.openChannel();
    await tunnel.service.openChannel();
    // A full stream: a request waits for a slot, and fails with ChannelLimit when its wait runs out.
    await expect(tunnel.service.openChannel("", 50)).rejects.toMatchObject({ code: "ChannelLimit" });
    const waiting = tunnel.service.openChannel();
    a.end("bye");
    await digest(a);
    await whenClosed(a);
    const c = await waiting;
    expect(c.id).toBe(3);
  });

  it("refuses OPENs beyond the cap from a peer that ignores it", async () => {
    const relay = createMemoryRelay();
    const device = new TunnelSession({ role: "device", transport: relay.b, maxChannels: 1 });
    const closed = once(device, "close");
    device.start();
    const raw = new RawPeer(relay.a);
    raw.send({ type: "hello", minVersion: 1, maxVersion: 1, ...DEVICE_HELLO_DEFAULTS });
    await raw.next("hello");
    raw.send({ type: "open", channel: 1, label: "" });
    raw.send({ type: "open", channel: 2, label: "" });
    expect(await raw.next("accept")).toEqual({ type: "accept", channel: 1 });
    expect(await raw.next("refuse")).toMatchObject({ channel: 2, reason: "ChannelLimit" });
    device.close();
    await closed;
  });

  it("rejects openChannel on the device side and after close", async () => {
    tunnel = createTunnel();
    await expect(tunnel.device.openChannel()).rejects.toMatchObject({ code: "ProtocolError" });
    await tunnel.shutdown();
    await expect(tunnel.service.openChannel()).rejects.toMatchObject({ code: "Normal" });
  });

  it("aborts open channels with the reason when the peer closes the stream", async () => {
    tunnel = createTunnel();
    const incoming = nextChannel(tunnel);
    const service = await tunnel.service.openChannel();
    const [device] = await incoming;
    const deviceError = once(device, "error") as Promise<[TunnelError]>;
    service.on("error", () => undefined);
    tunnel.service.close("GoingAway", "agent update");
    const [err] = await deviceError;
    expect(err).toMatchObject({ code: "GoingAway", byPeer: true });
    const info = await tunnel.deviceClosed;
    expect(info).toMatchObject({ reason: "GoingAway", message: "agent update", byPeer: true });
    expect((await tunnel.serviceClosed).byPeer).toBe(false);
  });
});
