/**
 * HTTP to a device by ID: a Node `http.Agent` whose connections are tunnel channels to one target
 * (device, module, stream name). Each keep-alive connection is one channel; channels come from a
 * ChannelPool, so streams are opened on demand, shared across requests and added only when every
 * channel is in use.
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import type { StreamsClient } from "../client";
import { ChannelPool, type ChannelPoolOptions } from "../pool";
import type { OpenStreamOptions } from "../models";

/** Where requests go: the device (or one of its modules) and the stream name its agent serves. */
export interface DeviceTarget {
  deviceId: string;
  moduleId?: string;
  streamName: string;
}

export interface DeviceHttpAgentOptions extends http.AgentOptions {
  /** How channels are spread over streams (see ChannelPoolOptions). */
  pool?: Omit<ChannelPoolOptions, "deviceId" | "name" | "openOptions">;
  /** Passed to each openStream (data for the device's callback, handshake timeout). */
  openOptions?: Omit<OpenStreamOptions, "abortSignal" | "moduleId">;
}

/**
 * The socket methods Node's HTTP client calls on its connection. A channel has no TCP socket under
 * it: keep-alive and Nagle belong to the relay's own connection, so these only keep the contract.
 */
function asSocket(channel: Duplex): Duplex {
  const socket = channel as Duplex & Record<string, unknown>;
  socket.setKeepAlive ??= () => socket;
  socket.setNoDelay ??= () => socket;
  socket.ref ??= () => socket;
  socket.unref ??= () => socket;
  socket.setTimeout ??= idleTimeout(channel);
  return socket;
}

/** net.Socket's setTimeout: 'timeout' after `ms` with no bytes in either direction. */
function idleTimeout(channel: Duplex) {
  let ms = 0;
  let last = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const touch = (): void => {
    last = Date.now();
  };
  const push = channel.push.bind(channel);
  channel.push = (chunk: unknown, encoding?: BufferEncoding) => (touch(), push(chunk, encoding));
  const write = channel.write.bind(channel) as (...args: unknown[]) => boolean;
  channel.write = ((...args: unknown[]) => (touch(), write(...args))) as typeof channel.write;
  const arm = (delay: number): void => {
    timer = setTimeout(() => {
      const idle = Date.now() - last;
      if (idle >= ms) channel.emit("timeout");
      else arm(ms - idle);
    }, delay);
    timer.unref();
  };
  channel.once("close", () => clearTimeout(timer));
  return function setTimeout(this: Duplex, timeoutMs: number, callback?: () => void): Duplex {
    clearTimeout(timer);
    ms = timeoutMs;
    if (callback) channel.once("timeout", callback);
    if (ms > 0) {
      touch();
      arm(ms);
    }
    return channel;
  };
}

export class DeviceHttpAgent extends http.Agent {
  readonly pool: ChannelPool;

  constructor(
    client: StreamsClient,
    readonly target: DeviceTarget,
    options: DeviceHttpAgentOptions = {},
  ) {
    const { pool, openOptions, ...agentOptions } = options;
    super({ keepAlive: true, ...agentOptions });
    this.pool = new ChannelPool(client, {
      ...pool,
      deviceId: target.deviceId,
      name: target.streamName,
      openOptions: { ...openOptions, ...(target.moduleId ? { moduleId: target.moduleId } : {}) },
    });
  }

  override createConnection(
    _options: http.ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): undefined {
    this.pool.openChannel("http").then(
      (channel) => callback?.(null, asSocket(channel)),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }

  /** Ends keep-alive connections and closes the streams under them. */
  async close(): Promise<void> {
    this.destroy();
    await this.pool.close();
  }
}
