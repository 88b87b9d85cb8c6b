/**
 * `devicestream forward`: a local TCP listener whose connections each become a channel. By default
 * connections share streams through a ChannelPool (one stream, opened on first use and re-opened
 * after it ends; a connection beyond the device's channels per stream waits for one, and another
 * stream opens only when that wait drags on); with `perConnection` each connection gets its own
 * stream, as IoT Hub device streams do.
 */
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import { ChannelPool, type DeviceStream, type OpenStreamOptions, type StreamsClient } from "../sdk/service";
import type { TunnelCloseInfo } from "../tunnel";
import type { HostPort } from "./args";
import { splice } from "./splice";

export interface ForwardOptions {
  deviceId: string;
  name: string;
  listen: HostPort;
  perConnection?: boolean;
  openOptions?: Omit<OpenStreamOptions, "abortSignal">;
  log?: (line: string) => void;
}

export class Forwarder {
  private server: Server | undefined;
  private readonly pool: ChannelPool;
  private readonly streams = new Set<DeviceStream>();
  private readonly sockets = new Set<Socket>();
  private readonly log: (line: string) => void;

  constructor(
    private readonly client: StreamsClient,
    private readonly options: ForwardOptions,
  ) {
    this.log = options.log ?? (() => undefined);
    this.pool = new ChannelPool(client, {
      deviceId: options.deviceId,
      name: options.name,
      ...(options.openOptions ? { openOptions: options.openOptions } : {}),
    });
    this.pool.on("opened", (stream) => this.opened(stream));
    this.pool.on("closed", (stream, info) => this.ended(stream, info));
    this.pool.on("saturated", (detail) =>
      this.log(`'${options.deviceId}' is at capacity: ${detail}; new connections wait for a free channel`),
    );
  }

  /** Starts listening; resolves with the bound address (port 0 picks one). */
  async listen(): Promise<AddressInfo> {
    const server = createServer({ allowHalfOpen: true }, (socket) => void this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.listen.port, this.options.listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([this.pool.close("GoingAway"), ...[...this.streams].map((s) => s.close("GoingAway"))]);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async accept(socket: Socket): Promise<void> {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
    const label = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? 0}`;
    try {
      const stream = this.options.perConnection ? await this.open() : undefined;
      if (!this.server) throw new Error("forwarder closed");
      // Early: the socket is spliced in at once, so its first bytes leave with the OPEN (a REFUSE
      // then resets the connection), per connection as in the pool.
      const channel = stream
        ? await stream.openChannel(label, { early: true })
        : await this.pool.openChannel(label);
      const err = await splice(socket, channel);
      if (err) this.log(`connection ${label}: ${err.message}`);
      if (stream) await stream.close();
    } catch (err) {
      this.log(`connection ${label}: ${err instanceof Error ? err.message : String(err)}`);
      socket.destroy();
    }
  }

  private async open(): Promise<DeviceStream> {
    const stream = await this.client.openStream(
      this.options.deviceId,
      this.options.name,
      this.options.openOptions,
    );
    this.streams.add(stream);
    this.opened(stream);
    stream.once("close", (info) => {
      this.streams.delete(stream);
      this.ended(stream, info);
    });
    return stream;
  }

  private opened(stream: DeviceStream): void {
    this.log(`stream ${stream.streamId} to '${this.options.deviceId}' open`);
  }

  private ended(stream: DeviceStream, { reason, message }: TunnelCloseInfo): void {
    this.log(`stream ${stream.streamId} closed: ${reason}${message ? ` (${message})` : ""}`);
  }
}
