/** splice(): TCP socket ⇄ tunnel channel, over an in-memory relay and real loopback sockets. */
import { once } from "node:events";
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
import type { Readable } from "node:stream";
import { splice } from "../../client/cli/splice";
import { type TunnelChannel, TunnelSession, createMemoryRelay } from "../../client/tunnel";
import { withDeadline } from "../helpers/events";

/** A connected socket pair (client, server side), both allowing half-open. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const client = connect({
    port: (server.address() as AddressInfo).port,
    host: "127.0.0.1",
    allowHalfOpen: true,
  });
  const [inner] = await accepted;
  server.close();
  return [client, inner];
}

async function channelPair(): Promise<{
  service: TunnelSession;
  serviceSide: TunnelChannel;
  deviceSide: TunnelChannel;
}> {
  const relay = createMemoryRelay();
  const service = new TunnelSession({ role: "service", transport: relay.a });
  const device = new TunnelSession({ role: "device", transport: relay.b });
  const incoming = once(device, "channel") as Promise<[TunnelChannel]>;
  device.start();
  service.start();
  const serviceSide = await service.openChannel();
  const [deviceSide] = await incoming;
  return { service, serviceSide, deviceSide };
}

const readAll = (s: Readable) =>
  new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on("data", (b: Buffer) => parts.push(b));
    s.on("end", () => resolve(Buffer.concat(parts).toString()));
    s.on("error", reject);
  });

describe("splice", () => {
  it("passes data and half-close both ways", async () => {
    const [outside, inner] = await socketPair();
    const { serviceSide, deviceSide, service } = await channelPair();
    const done = splice(inner, serviceSide);
    const fromOutside = readAll(deviceSide);
    outside.end("request");
    expect(await withDeadline(fromOutside, 10_000, "request")).toBe("request");
    // The outside's write side is closed; the reply still flows back.
    const reply = readAll(outside);
    deviceSide.end("reply");
    expect(await withDeadline(reply, 10_000, "reply")).toBe("reply");
    expect(await withDeadline(done, 10_000, "splice done")).toBeUndefined();
    service.close();
  });

  it("a channel reset resets the TCP connection", async () => {
    const [outside, inner] = await socketPair();
    const { serviceSide, deviceSide, service } = await channelPair();
    const done = splice(inner, serviceSide);
    const outsideError = once(outside, "error") as Promise<[NodeJS.ErrnoException]>;
    deviceSide.abort("TargetError", "ECONNREFUSED");
    const [err] = await withDeadline(outsideError, 10_000, "RST");
    expect(err.code).toBe("ECONNRESET");
    expect(await done).toMatchObject({ code: "TargetError" });
    service.close();
  });

  it("a socket error resets the channel; a stream closed by the application resets the socket", async () => {
    const [outside, inner] = await socketPair();
    const { serviceSide, deviceSide, service } = await channelPair();
    void splice(inner, serviceSide);
    const reset = once(deviceSide, "error") as Promise<[Error & { code: string }]>;
    outside.resetAndDestroy();
    const [err] = await withDeadline(reset, 10_000, "channel reset");
    expect(err).toMatchObject({
      name: "TunnelError",
      code: "ApplicationError",
      message: expect.stringMatching(/ECONNRESET/),
    });
    service.close();

    const [outside2, inner2] = await socketPair();
    const second = await channelPair();
    second.deviceSide.on("error", () => undefined);
    const done = splice(inner2, second.serviceSide);
    const reset2 = once(outside2, "error") as Promise<[NodeJS.ErrnoException]>;
    second.service.close(); // destroys its channels without an error
    const [err2] = await withDeadline(reset2, 10_000, "outside socket reset");
    expect(err2.code).toBe("ECONNRESET");
    expect(await done).toBeUndefined();
  });

  // Issue 16: an HTTP server closing an idle keep-alive connection must reach the service side as
  // the channel's end, whichever features the stream negotiated (tunnel-protocol §5). With implicit
  // accept and a target that closes at once, the FIN is the device's first frame on the channel.
  const modes: Array<[string, { earlyData?: boolean; implicitAccept?: boolean }]> = [
    ["early data and implicit accept", {}],
    ["early data without implicit accept", { implicitAccept: false }],
    ["no early data", { earlyData: false }],
  ];
  const targets: Array<[string, (socket: Socket) => void]> = [
    ["answers, then ends its side (FIN)", (socket) => socket.end("answer")],
    ["answers, then closes", (socket) => socket.end("answer", () => socket.destroy())],
    ["closes before sending a byte", (socket) => socket.destroy()],
  ];
  describe.each(modes)("with %s", (_mode, features) => {
    it.each(targets)("a target that %s ends the service side's channel", async (name, act) => {
      const target = createServer({ allowHalfOpen: true }, (socket) =>
        socket.once("data", () => act(socket)),
      );
      target.listen(0, "127.0.0.1");
      await once(target, "listening");
      const relay = createMemoryRelay();
      const service = new TunnelSession({ role: "service", transport: relay.a, ...features });
      const device = new TunnelSession({ role: "device", transport: relay.b, ...features });
      const spliced: Array<Promise<Error | undefined>> = [];
      const sockets: Socket[] = [];
      target.on("connection", (socket: Socket) => sockets.push(socket));
      device.on("channel", (channel) => {
        const port = (target.address() as AddressInfo).port;
        const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
        sockets.push(socket);
        spliced.push(splice(socket, channel));
      });
      device.start();
      service.start();
      try {
        const channel = await service.openChannel("", 10_000, true);
        expect([service.earlyData, service.implicitAccept]).toEqual([
          features.earlyData !== false,
          features.earlyData !== false && features.implicitAccept !== false,
        ]);
        const answer = readAll(channel);
        channel.write("request");
        const expected = name.startsWith("answers") ? "answer" : "";
        expect(await withDeadline(answer, 10_000, "the service side's end")).toBe(expected);
        channel.end();
        await withDeadline(once(channel, "close"), 10_000, "the service side's close");
        expect(await withDeadline(Promise.all(spliced), 10_000, "splice done")).toHaveLength(1);
        expect(service.openChannelCount).toBe(0);
      } finally {
        service.close();
        device.close();
        for (const socket of sockets) socket.destroy();
        target.close();
      }
    });
  });
});
