import { once } from "node:events";
import { type ChannelDecision, FEATURES, decodeFrame, encodeFrame } from "../../client/tunnel";
import { type Tunnel, createTunnel } from "./helpers";

/** A device decision the test releases by hand, so "before ACCEPT" is a state, not a race. */
function heldDecision() {
  let release!: (d: ChannelDecision) => void;
  const decision = new Promise<ChannelDecision>((resolve) => (release = resolve));
  return { acceptChannel: () => decision, release };
}

describe("tunnel early data (docs/tunnel-protocol.md §4 features, §5)", () => {
  let tunnel: Tunnel | undefined;
  afterEach(async () => {
    await tunnel?.shutdown();
    tunnel = undefined;
  });

  it("sends DATA and FIN with the OPEN before the device decides, and delivers them once accepted", async () => {
    const held = heldDecision();
    tunnel = createTunnel({ device: { acceptChannel: held.acceptChannel } });
    const channel = await tunnel.service.openChannel("x", undefined, true);
    expect(tunnel.service.earlyData).toBe(true);
    channel.end("hello");
    const incoming = once(tunnel.device, "channel");
    // The frames reached the device while its decision is pending: stream credit came back for them.
    await new Promise((resolve) => setImmediate(resolve));
    held.release({ accept: true });
    const [deviceChannel] = (await incoming) as [NodeJS.ReadableStream];
    const chunks: Buffer[] = [];
    for await (const c of deviceChannel) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("hello");
  });

  it("errors the service's channel with the REFUSE and discards its early data; the stream goes on", async () => {
    tunnel = createTunnel({
      device: {
        acceptChannel: ({ label }) =>
          label === "no" ? { accept: false, reason: "TargetUnavailable" } : { accept: true },
      },
    });
    tunnel.device.on("channel", (c) => c.pipe(c));
    const refused = await tunnel.service.openChannel("no", undefined, true);
    refused.write(Buffer.alloc(100_000));
    const [err] = (await once(refused, "error")) as [Error & { code?: string }];
    expect(err.code).toBe("TargetUnavailable");
    const ok = await tunnel.service.openChannel("yes", undefined, true);
    ok.end("still open");
    const chunks: Buffer[] = [];
    for await (const c of ok) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("still open");
  });

  it("today's device (no feature in its HELLO): the new service waits for ACCEPT", async () => {
    const held = heldDecision();
    tunnel = createTunnel({ device: { earlyData: false, acceptChannel: held.acceptChannel } });
    let resolved = false;
    const opened = tunnel.service.openChannel("x", undefined, true).then((c) => {
      resolved = true;
      return c;
    });
    await tunnel.service.waitReady();
    await new Promise((resolve) => setImmediate(resolve));
    expect(tunnel.service.earlyData).toBe(false);
    expect(resolved).toBe(false);
    held.release({ accept: true });
    expect((await opened).id).toBe(1);
  });

  it("today's service (plain v1 HELLO): a new device offers nothing back and the stream works", async () => {
    tunnel = createTunnel({ service: { earlyData: false } });
    tunnel.device.on("channel", (c) => c.pipe(c));
    const channel = await tunnel.service.openChannel("x", undefined, true);
    expect(tunnel.device.earlyData).toBe(false);
    channel.end("v1");
    const chunks: Buffer[] = [];
    for await (const c of channel) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("v1");
  });

  it("encodes a HELLO without features byte for byte as v1, and decodes the feature bits", () => {
    const hello = {
      type: "hello" as const,
      minVersion: 1,
      maxVersion: 1,
      streamWindowBytes: 1024,
      streamWindowMessages: 8,
      channelWindowBytes: 1024,
      channelWindowMessages: 8,
      maxChannels: 4,
      maxDataPayload: 1024,
    };
    expect(encodeFrame(0, hello).length).toBe(14 + 24);
    const decoded = decodeFrame(encodeFrame(0, { ...hello, features: FEATURES.earlyData }));
    expect(decoded).toMatchObject({ ok: true, frame: { features: FEATURES.earlyData } });
  });
});
