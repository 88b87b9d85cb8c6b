/**
 * `devicestream forward` as a thin layer over the SDK: every connection's first bytes leave with
 * its channel's OPEN (early data, docs/tunnel-protocol.md §5), pooled or one stream per connection.
 */
import { once } from "node:events";
import { connect } from "node:net";
import { Forwarder } from "../../client/cli/forward";
import type { TunnelCloseInfo } from "../../client/tunnel";
import { echo } from "./helpers";
import { useTarget } from "./target";

const stack = useTarget();

async function echoOnce(port: number, text: string): Promise<string> {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.setEncoding("utf8");
  let got = "";
  socket.on("data", (t: string) => (got += t));
  socket.end(text);
  await once(socket, "close");
  return got;
}

/** An echoing device; resolves, per stream it serves, with the stream's close report. */
async function echoDevice(name: string) {
  const s = stack();
  const deviceId = s.deviceId(name);
  const listener = s.listen(await s.device(deviceId), { onRequest: () => ({ accept: true }) });
  const closes: Array<Promise<TunnelCloseInfo>> = [];
  listener.on("stream", (stream) => {
    stream.on("channel", echo);
    closes.push(once(stream, "close").then(([info]) => info as TunnelCloseInfo));
  });
  return { deviceId, closes };
}

describe("forward", () => {
  it("one stream per connection: the connection's bytes go with the OPEN, so the device sends no ACCEPT", async () => {
    const { deviceId, closes: deviceStreams } = await echoDevice("Fwd-PerConn");
    const forwarder = new Forwarder(stack().client(), {
      deviceId,
      name: "echo",
      listen: { host: "127.0.0.1", port: 0 },
      perConnection: true,
    });
    const { port } = await forwarder.listen();
    try {
      expect(await echoOnce(port, "per connection")).toBe("per connection");
      const [info] = await Promise.all(deviceStreams);
      // HELLO, the echoed DATA and FIN, and the answer to the service's CLOSE; waiting for the
      // ACCEPT (no early data) would add one.
      expect(info!.stats.framesSent).toBe(4);
      expect(info!.stats.channelsOpened).toBe(1);
    } finally {
      await forwarder.close();
    }
  });

  it("pooled: two connections on one stream cost the device two frames each (DATA, FIN)", async () => {
    const { deviceId, closes: deviceStreams } = await echoDevice("Fwd-Pooled");
    const forwarder = new Forwarder(stack().client(), {
      deviceId,
      name: "echo",
      listen: { host: "127.0.0.1", port: 0 },
    });
    const { port } = await forwarder.listen();
    try {
      expect(await echoOnce(port, "one")).toBe("one");
      expect(await echoOnce(port, "two")).toBe("two");
    } finally {
      await forwarder.close();
    }
    const infos = await Promise.all(deviceStreams);
    expect(infos).toHaveLength(1);
    // HELLO, then DATA and FIN per connection: no ACCEPT (implicit accept); then the CLOSE answer.
    expect(infos[0]!.stats.framesSent).toBe(6);
    expect(infos[0]!.stats.channelsOpened).toBe(2);
  });
});
