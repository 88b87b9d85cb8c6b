/**
 * HTTP to a device by ID: a Node `http.Agent` whose connections are tunnel channels to one target
 * (device, module, stream name). Each keep-alive connection is one channel; channels come from a
 * ChannelPool, so streams are opened on demand, shared across requests and added only when every
 * channel is in use.
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import type { StreamsClient } from "../client";
import { ChannelPool, type PooledChannel } from "../pool";
import { type DeviceHttpOptions, type DeviceTarget, poolOptions } from "./target";

export type { DeviceTarget } from "./target";

export interface DeviceHttpAgentOptions extends http.AgentOptions, DeviceHttpOptions {}

/**
 * A channel as the socket Node's HTTP client expects. `ref`/`unref` are the pool's (an idle
 * keep-alive connection does not hold the process open). A channel has no TCP socket of its own:
 * liveness is the tunnel's keepalive (a ping after 15 s of silence, the stream closed after 45 s)
 * and the relay's WebSocket already runs with Nagle off and flushes each tick's frames in one
 * write, so `setKeepAlive` and `setNoDelay` have nothing left to change and only keep the contract.
 */
function asSocket(channel: PooledChannel): PooledChannel {
  const socket = channel as PooledChannel & Record<string, unknown>;
  socket.setKeepAlive = () => socket;
  socket.setNoDelay = () => socket;
  socket.setTimeout = idleTimeout(socket);
  // A channel allows half-open; an HTTP client's socket does not. Node's agent drops a free socket
  // only on 'close', so a connection the device's web server ended while idle (its keep-alive
  // timeout) would stay free, and the next request would wait on it forever. Like net.Socket
  // without allowHalfOpen: answer the FIN with ours, and the channel closes once both are through.
  socket.once("end", () => socket.end());
  return socket;
}

/**
 * net.Socket's setTimeout: 'timeout' after `ms` with no bytes in either direction (timer unref'd).
 * Activity is tracked only once a timeout is set: Node's agent calls setTimeout(0) on every
 * keep-alive socket, and the data path of a connection without a timeout stays untouched.
 */
function idleTimeout(socket: PooledChannel & { timeout?: number }) {
  let ms = 0;
  let last = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let tracking = false;
  // net.Socket refreshes its timer on activity after it fired, so each idle period of `ms` emits
  // 'timeout' again (a request that ignores one still hears of the next).
  let fired = false;
  const touch = (): void => {
    last = Date.now();
    if (fired && ms > 0 && !socket.destroyed) {
      fired = false;
      arm(ms);
    }
  };
  const track = (): void => {
    tracking = true;
    const push = socket.push.bind(socket);
    socket.push = (chunk: unknown, encoding?: BufferEncoding) => (touch(), push(chunk, encoding));
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((...args: unknown[]) => (touch(), write(...args))) as typeof socket.write;
  };
  const arm = (delay: number): void => {
    timer = setTimeout(() => {
      const idle = Date.now() - last;
      if (idle < ms) return arm(ms - idle);
      fired = true;
      socket.emit("timeout");
    }, delay);
    timer.unref();
  };
  socket.once("close", () => clearTimeout(timer));
  return function setTimeout(timeoutMs: number, callback?: () => void): PooledChannel {
    clearTimeout(timer);
    fired = false;
    ms = timeoutMs;
    socket.timeout = ms;
    if (callback && ms === 0) socket.removeListener("timeout", callback);
    else if (callback) socket.once("timeout", callback);
    if (ms > 0 && !socket.destroyed) {
      if (!tracking) track();
      touch();
      arm(ms);
    }
    return socket;
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
    this.pool = new ChannelPool(client, poolOptions(target, { pool, openOptions }));
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
