import { once } from "node:events";
import type { Duplex } from "node:stream";
import { decodeFrame } from "../../client/tunnel";
import { type Tunnel, createTunnel, echoChannels } from "./helpers";

/** A tunnel whose relay records the type of every channel frame the service sends. */
function recordingTunnel(): { tunnel: Tunnel; sent: string[] } {
  const sent: string[] = [];
  const tunnel = createTunnel({
    relay: {
      fault: (raw, from) => {
        const decoded = decodeFrame(raw);
        if (from === "a" && decoded.ok && "channel" in decoded.frame) sent.push(decoded.frame.type);
        return "pass";
      },
    },
  });
  echoChannels(tunnel.device);
  return { tunnel, sent };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("an early OPEN is held for the opener's first bytes (docs/tunnel-protocol.md §5)", () => {
  let tunnel: Tunnel | undefined;
  afterEach(async () => {
    await tunnel?.shutdown();
    tunnel = undefined;
  });

  it("waits a loop turn, so bytes that arrive in it leave with the OPEN", async () => {
    const recorded = recordingTunnel();
    tunnel = recorded.tunnel;
    const channel = await tunnel.service.openChannel("c", undefined, true);
    // A socket's first read comes a loop turn after its accept: the OPEN must still be here.
    await nextTurn();
    expect(recorded.sent).toEqual([]);
    const echoed = once(channel, "data");
    channel.write(Buffer.from("first bytes"));
    expect(((await echoed) as [Buffer])[0].toString()).toBe("first bytes");
    expect(recorded.sent.slice(0, 2)).toEqual(["open", "data"]);
  });

  it("sends an OPEN without bytes after that turn: a server that speaks first is not kept waiting", async () => {
    const recorded = recordingTunnel();
    tunnel = recorded.tunnel;
    const incoming = once(tunnel.device, "channel") as Promise<[Duplex]>;
    const channel = await tunnel.service.openChannel("c", undefined, true);
    const [deviceChannel] = await incoming;
    expect(recorded.sent).toEqual(["open"]);
    deviceChannel.unpipe();
    const greeting = once(channel, "data");
    deviceChannel.write("banner");
    expect(((await greeting) as [Buffer])[0].toString()).toBe("banner");
  });

  it("sends nothing for a channel destroyed before its OPEN left, and the stream goes on", async () => {
    const recorded = recordingTunnel();
    tunnel = recorded.tunnel;
    const gone = await tunnel.service.openChannel("gone", undefined, true);
    gone.write("never sent");
    gone.destroy();
    await nextTurn();
    const ok = await tunnel.service.openChannel("ok", undefined, true);
    ok.end("still open");
    const chunks: Buffer[] = [];
    for await (const c of ok) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("still open");
    expect(recorded.sent).not.toContain("reset");
    expect(tunnel.service.closed).toBe(false);
    expect(tunnel.device.closed).toBe(false);
    expect(tunnel.service.openChannelCount).toBe(0);
  });
});
