/**
 * `devicestream forward`: a local TCP listener whose connections each become a channel. By default
 * all connections share one stream, opened on first use and re-opened after it ends; with
 * `perConnection` each connection gets its own stream, as IoT Hub device streams do.
 */
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import type { DeviceStream, OpenStreamOptions, StreamsClient } from "../sdk/service";
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
  private shared: Promise<DeviceStream> | undefined;
  private readonly streams = new Set<DeviceStream>();
  private readonly sockets = new Set<Socket>();
  private readonly log: (line: string) => void;

  constructor(
    private readonly client: StreamsClient,
    private readonly options: ForwardOptions,
  ) {
    this.log = options.log ?? (() => undefined);
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
    await Promise.all([...this.streams].map((s) => s.close("GoingAway")));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async accept(socket: Socket): Promise<void> {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
    const label = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? 0}`;
    try {
      let stream = this.options.perConnection ? await this.open() : await this.sharedStream();
      if (!this.server) throw new Error("forwarder closed");
      let channel;
      try {
        channel = await stream.openChannel(label);
      } catch (err) {
        // The shared stream ended while this connection arrived: a fresh one serves it.
        if (this.options.perConnection || !stream.closed) throw err;
        stream = await this.sharedStream();
        channel = await stream.openChannel(label);
      }
      const err = await splice(socket, channel);
      if (err) this.log(`connection ${label}: ${err.message}`);
      if (this.options.perConnection) await stream.close();
    } catch (err) {
      this.log(`connection ${label}: ${err instanceof Error ? err.message : String(err)}`);
      socket.destroy();
    }
  }

  /** The shared stream; a new one when there is none or the last one ended. */
  private sharedStream(): Promise<DeviceStream> {
    if (!this.shared) {
      const opening = this.open();
      this.shared = opening;
      opening.then(
        (stream) => stream.once("close", () => this.shared === opening && (this.shared = undefined)),
        () => this.shared === opening && (this.shared = undefined),
      );
    }
    return this.shared;
  }

  private async open(): Promise<DeviceStream> {
    const stream = await this.client.openStream(
      this.options.deviceId,
      this.options.name,
      this.options.openOptions,
    );
    this.streams.add(stream);
    this.log(`stream ${stream.streamId} to '${this.options.deviceId}' open`);
    stream.once("close", ({ reason, message }) => {
      this.streams.delete(stream);
      this.log(`stream ${stream.streamId} closed: ${reason}${message ? ` (${message})` : ""}`);
    });
    return stream;
  }
}
