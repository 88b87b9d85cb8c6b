/**
 * What the gateway tests share: a device whose agent maps a stream name to a web server of the
 * test's, and an HTTP client that reaches the gateway on 127.0.0.1 with a device's host name.
 */
import http from "node:http";
import { type AddressInfo, type Socket, connect } from "node:net";
import type { Client } from "azure-iot-device";
import type { IncomingStream } from "../../client/sdk/device";
import type { StreamsTarget } from "../sdk/target";

export interface DeviceWeb {
  deviceId: string;
  server: http.Server;
  device: Client;
  /** Streams the device accepted, in order (a test tears one down to see the gateway recover). */
  streams: IncomingStream[];
  close(): Promise<void>;
}

/** A device (connected now) whose stream `name` reaches `server` (listening on 127.0.0.1:0). */
export async function deviceWeb(
  target: StreamsTarget,
  deviceId: string,
  server: http.Server,
  name = "web",
): Promise<DeviceWeb> {
  // Upgraded connections (WebSockets) leave the server's own list, and closeAllConnections with it:
  // one the tunnel left open would hold server.close() forever.
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const device = await target.device(deviceId);
  const streams: IncomingStream[] = [];
  const listener = target.listen(device, {
    onRequest: (req) =>
      req.name === name ? { accept: true } : { accept: false, reason: `'${req.name}' is not served` },
  });
  listener.on("stream", (stream) => {
    streams.push(stream);
    stream.on("channel", (channel) => {
      const tcp = connect(port, "127.0.0.1");
      tcp.on("error", () => channel.destroy());
      channel.on("error", () => tcp.destroy());
      channel.pipe(tcp).pipe(channel);
    });
  });
  return {
    deviceId,
    server,
    device,
    streams,
    close: async () => {
      await listener.close();
      await device.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json(): any;
}

export interface SendOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  agent?: http.Agent;
}

/** One request to the gateway on 127.0.0.1 as host `host` (the port is added). */
export function send(port: number, host: string, path: string, o: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: o.method ?? "GET",
        headers: { host: `${host}:${port}`, ...o.headers },
        agent: o.agent ?? false,
      },
      (res) => void readReply(res).then(resolve, reject),
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

/** A response read to its end. */
export function readReply(res: http.IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    res.on("data", (b: Buffer) => parts.push(b));
    res.on("end", () => {
      const body = Buffer.concat(parts);
      const text = body.toString("utf8");
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body,
        text,
        json: () => JSON.parse(text),
      });
    });
    res.on("error", reject);
  });
}
