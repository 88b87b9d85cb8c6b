/**
 * `fetch` to a device by ID: an undici dispatcher whose connections are channels of a ChannelPool,
 * and a fetch bound to it. Built on this package's own undici (7.x): Node's global fetch refuses a
 * dispatcher from another undici major. Loaded only through ./fetch, so callers that never fetch
 * never load undici.
 */
import type { Socket } from "node:net";
import { Agent, fetch as undiciFetch, type RequestInfo, type RequestInit, type Response } from "undici";
import type { StreamsClient } from "../client";
import { ChannelPool } from "../pool";
import { type DeviceHttpOptions, type DeviceTarget, poolOptions } from "./target";

export interface DeviceDispatcherOptions extends DeviceHttpOptions {
  /**
   * undici Agent options (keepAliveTimeout, headersTimeout, bodyTimeout, connections, ...), less
   * `connect`, which is the pool's. Their defaults are undici's.
   */
  undici?: Omit<Agent.Options, "connect" | "factory">;
}

export class DeviceDispatcher extends Agent {
  readonly pool: ChannelPool;

  constructor(
    client: StreamsClient,
    readonly target: DeviceTarget,
    options: DeviceDispatcherOptions = {},
  ) {
    const pool = new ChannelPool(client, poolOptions(target, options));
    super({
      ...options.undici,
      connect: (opts, callback) => {
        // The channel is the device's plain TCP connection: TLS to the device is not spoken here.
        if (opts.protocol !== "http:") {
          callback(new TypeError(`${opts.protocol} is not supported to a device: use http:`), null);
          return;
        }
        pool.openChannel("http").then(
          (channel) => callback(null, channel as unknown as Socket),
          (err: Error) => callback(err, null),
        );
      },
    });
    this.pool = pool;
  }

  // undici's promise forms call the callback forms through `this`: the pool closes in the latter.

  /** Waits for the requests in flight, then closes the streams under them. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (!callback) return new Promise<void>((resolve) => this.close(resolve));
    super.close(() => void this.pool.close().finally(callback));
  }

  /** Ends every request and connection at once, and the streams under them. */
  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === "function" ? null : (errOrCallback ?? null);
    const cb = typeof errOrCallback === "function" ? errOrCallback : callback;
    if (!cb) return new Promise<void>((resolve) => this.destroy(err, resolve));
    super.destroy(err, () => void this.pool.close().finally(cb));
  }
}

/** fetch(), every request of which goes to one target; `dispatcher` is its connection pool. */
export interface DeviceFetch {
  (input: RequestInfo, init?: Omit<RequestInit, "dispatcher">): Promise<Response>;
  readonly dispatcher: DeviceDispatcher;
  /** Closes the dispatcher (requests in flight finish) and the streams. */
  close(): Promise<void>;
}

export function createDeviceFetch(
  client: StreamsClient,
  target: DeviceTarget,
  options: DeviceDispatcherOptions = {},
): DeviceFetch {
  const dispatcher = new DeviceDispatcher(client, target, options);
  const deviceFetch = (input: RequestInfo, init?: Omit<RequestInit, "dispatcher">) =>
    undiciFetch(input, { ...init, dispatcher });
  return Object.assign(deviceFetch, { dispatcher, close: () => dispatcher.close() });
}
