/**
 * A device whose stream name maps to a web server on loopback (what `devicestream device --map
 * web=127.0.0.1:port` does), for the HTTP agent and fetch tests: the server, the device's streams,
 * and the connections the server saw.
 */
import http from "node:http";
import { type AddressInfo, type Socket, connect } from "node:net";
import type { IncomingStream } from "../../client/sdk/device";
import type { StreamsTarget } from "./target";
import { Recorder } from "../helpers/events";

export interface WebDevice {
  deviceId: string;
  server: http.Server;
  port: number;
  /** Streams the device accepted, in order. */
  streams: Recorder<IncomingStream>;
  /** TCP connections the web server accepted. */
  connections: Recorder<Socket>;
  close(): Promise<void>;
}

export async function webDevice(
  s: StreamsTarget,
  name: string,
  handler: http.RequestListener,
  limits: { maxChannelsPerStream?: number; maxStreams?: number } = {},
): Promise<WebDevice> {
  const server = http.createServer(handler);
  const connections = new Recorder<Socket>();
  server.on("connection", connections.push);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const deviceId = s.deviceId(name);
  const client = await s.device(deviceId);
  const streams = new Recorder<IncomingStream>();
  const listener = s.listen(client, { onRequest: () => ({ accept: true }), ...limits });
  listener.on("stream", (stream) => {
    streams.push(stream);
    stream.on("channel", (channel) => {
      const tcp = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      tcp.on("error", (err: NodeJS.ErrnoException) => channel.abort("TargetError", err.code));
      channel.on("error", () => tcp.destroy());
      channel.pipe(tcp).pipe(channel);
    });
  });
  return {
    deviceId,
    server,
    port,
    streams,
    connections,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
