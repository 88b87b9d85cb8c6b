/**
 * A minimal HTTPS (CONNECT) proxy for tests: records every CONNECT target as `host:port`, tunnels
 * it to that target or to the address `map` gives for it (e.g. `localhost:443` → the IoT Hub
 * emulator's real port, because MqttWs always dials 443). Anything but CONNECT gets 405.
 */
import { createServer, type IncomingMessage } from "node:http";
import { type AddressInfo, type Socket, connect } from "node:net";
import type { Duplex } from "node:stream";
import { Recorder } from "./events";

export interface HostPort {
  host: string;
  port: number;
}

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>`, for HTTPS_PROXY. */
  url: string;
  /** Every CONNECT target as the client sent it, in order (mapped or not). */
  targets: Recorder<string>;
  close(): Promise<void>;
}

/** `host:port` or `[v6]:port`; undefined when it is neither. */
function parseTarget(target: string): HostPort | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  return host && port > 0 && port < 65536 ? { host, port } : undefined;
}

export async function startConnectProxy(map: Record<string, HostPort> = {}): Promise<ConnectProxy> {
  const targets = new Recorder<string>();
  const open = new Set<Duplex>();
  const track = (socket: Duplex) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  };
  const server = createServer((_req, res) => res.writeHead(405).end());
  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    track(client);
    const target = req.url ?? "";
    targets.push(target);
    const dest = map[target] ?? parseTarget(target);
    client.on("error", () => undefined);
    if (!dest) {
      client.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const upstream: Socket = connect(dest.port, dest.host);
    track(upstream);
    let established = false;
    upstream.once("connect", () => {
      established = true;
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => {
      if (established) client.destroy();
      else client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    });
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    targets,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of open) socket.destroy();
      server.closeAllConnections();
      await closed;
    },
  };
}
