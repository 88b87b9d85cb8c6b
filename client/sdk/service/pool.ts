/**
 * Channels to one device target (device, module, stream name) over as few streams as will carry
 * them. Each stream costs a metered direct method, two relay connections and one of the device's
 * stream slots, while a channel on an open stream costs a frame; so a channel goes to an open stream
 * with room, waits briefly for room when every stream is full, and only then opens another stream.
 * `devicestream forward` is a thin layer over this; so is anything that maps many connections onto
 * a device (an HTTP agent, a gateway).
 */
import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { StreamsClient } from "./client";
import type { TunnelCloseInfo } from "../../tunnel";
import type { DeviceStream } from "./deviceStream";
import { StreamsError, isStreamsError } from "./errors";
import type { OpenStreamOptions } from "./models";

export interface ChannelPoolOptions {
  deviceId: string;
  name: string;
  openOptions?: Omit<OpenStreamOptions, "abortSignal">;
  /** How long a full stream is waited on before another stream is opened (default 500 ms). */
  overflowAfterInMs?: number;
  /** How long a channel request waits in all before it fails with ChannelLimit (default 60 s). */
  queueTimeoutInMs?: number;
  /** Streams this pool opens at most (default 4). */
  maxStreams?: number;
  /**
   * A stream with no channel in use for this long is closed (default 30 s); see keepFirstStream.
   * Unref'd channels (an HTTP client's idle keep-alive connections) do not count as in use.
   */
  idleCloseInMs?: number;
  /**
   * Keep the first stream open however long it idles (default true): `forward` answers its next
   * connection without a stream setup. False closes every stream after `idleCloseInMs`, which frees
   * the device's stream slot and its relay connection (the HTTP agent's default).
   */
  keepFirstStream?: boolean;
}

/**
 * A channel from the pool. Like a net.Socket, it holds the process open until `unref()`: a stream
 * whose channels are all unref'd (or that has none) does not keep the process alive, so an idle
 * keep-alive connection never stops a program from exiting.
 */
export type PooledChannel = Duplex & { ref(): PooledChannel; unref(): PooledChannel };

interface PoolEvents {
  opened: [stream: DeviceStream];
  closed: [stream: DeviceStream, info: TunnelCloseInfo];
  /**
   * Every stream is full and no more can be opened (the pool's `maxStreams`, or the device's or the
   * control plane's stream limits): requests now wait for a channel to finish. Emitted once per
   * pool, so a caller can say it once.
   */
  saturated: [detail: string];
}

const DEFAULTS = {
  overflowAfterInMs: 500,
  queueTimeoutInMs: 60_000,
  maxStreams: 4,
  idleCloseInMs: 30_000,
  keepFirstStream: true,
};

/** Failures of an extra stream that mean "no more streams for now" (a device at its limit rejects). */
const CAPACITY_CODES = new Set(["TooManyStreams", "Throttled", "StreamRejected"]);

export class ChannelPool extends EventEmitter<PoolEvents> {
  private readonly streams = new Set<DeviceStream>();
  private opening: Promise<DeviceStream> | undefined;
  private readonly idleTimers = new Map<DeviceStream, NodeJS.Timeout>();
  private readonly pending = new Map<DeviceStream, number>();
  /** Per stream, how many channels handed out are open and ref'd (in use); each channel keeps its own count right. */
  private readonly held = new Map<DeviceStream, number>();
  /** Set while the device or control plane refuses more streams; cleared when a stream ends. */
  private saturated = false;
  private refusal: string | undefined;
  private announced = false;
  private closed = false;
  private readonly o: typeof DEFAULTS;

  constructor(
    private readonly client: StreamsClient,
    private readonly options: ChannelPoolOptions,
  ) {
    super();
    this.o = {
      overflowAfterInMs: options.overflowAfterInMs ?? DEFAULTS.overflowAfterInMs,
      queueTimeoutInMs: options.queueTimeoutInMs ?? DEFAULTS.queueTimeoutInMs,
      maxStreams: options.maxStreams ?? DEFAULTS.maxStreams,
      idleCloseInMs: options.idleCloseInMs ?? DEFAULTS.idleCloseInMs,
      keepFirstStream: options.keepFirstStream ?? DEFAULTS.keepFirstStream,
    };
  }

  /** Open streams, in the order they were opened. */
  get openStreams(): readonly DeviceStream[] {
    return [...this.streams];
  }

  /**
   * A channel on a stream with room; waits for room (opening another stream after
   * `overflowAfterInMs`) up to `queueTimeoutInMs`, then rejects with a StreamsError `ChannelLimit`.
   * Opening the first stream fails as `openStream` does (device offline, rejected, ...).
   */
  async openChannel(label = ""): Promise<PooledChannel> {
    const deadline = Date.now() + this.o.queueTimeoutInMs;
    let retriedClosed = false;
    for (;;) {
      if (this.closed) throw new StreamsError("Aborted", "the channel pool is closed");
      const stream = this.leastLoaded() ?? (await this.grow());
      const remaining = deadline - Date.now();
      const roomy = this.load(stream) < stream.channelCapacity;
      const mayGrow = !this.saturated && this.streams.size < this.o.maxStreams;
      if (!roomy && !mayGrow) this.announce();
      const wait = roomy ? remaining : mayGrow ? Math.min(this.o.overflowAfterInMs, remaining) : remaining;
      this.pending.set(stream, (this.pending.get(stream) ?? 0) + 1);
      this.settle(stream);
      try {
        const channel = await stream.openChannel(label, {
          waitInMs: Math.max(0, wait),
          // forward splices a socket into it: its first bytes go with the OPEN (tunnel-protocol §5).
          early: true,
        });
        return this.hold(stream, channel);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        // A stream that ended under this request: one more round picks or opens another. Only one:
        // a device that ends every stream it is given must not make a request open stream after stream.
        if (stream.closed && !retriedClosed && Date.now() < deadline) {
          retriedClosed = true;
          continue;
        }
        if (code !== "ChannelLimit") throw err;
        if (Date.now() >= deadline) {
          throw new StreamsError(
            "ChannelLimit",
            `every channel to '${this.options.deviceId}' stayed in use for ${this.o.queueTimeoutInMs} ms`,
          );
        }
        if (mayGrow) await this.grow().catch((e: unknown) => this.onGrowFailed(e));
      } finally {
        // A stream that closed meanwhile has no entry any more; none is made for it again.
        const pending = this.pending.get(stream);
        if (pending !== undefined) this.pending.set(stream, pending - 1);
        this.settle(stream);
      }
    }
  }

  /** Channels open on a stream plus requests on their way to it (they have not counted yet). */
  private load(stream: DeviceStream): number {
    return stream.openChannelCount + (this.pending.get(stream) ?? 0);
  }

  /** Closes every stream (their channels end); later requests fail. */
  async close(reason: "Normal" | "GoingAway" = "Normal"): Promise<void> {
    this.closed = true;
    for (const timer of this.idleTimers.values()) clearTimeout(timer);
    this.idleTimers.clear();
    await Promise.all([...this.streams].map((s) => s.close(reason)));
  }

  private leastLoaded(): DeviceStream | undefined {
    let best: DeviceStream | undefined;
    for (const s of this.streams) {
      if (s.closed) continue;
      if (!best || this.load(s) / s.channelCapacity < this.load(best) / best.channelCapacity) best = s;
    }
    return best;
  }

  /** Opens one more stream (one at a time: concurrent callers share the open in flight). */
  private grow(): Promise<DeviceStream> {
    this.opening ??= this.openOne().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async openOne(): Promise<DeviceStream> {
    const stream = await this.client.openStream(
      this.options.deviceId,
      this.options.name,
      this.options.openOptions,
    );
    if (this.closed) {
      await stream.close("GoingAway");
      throw new StreamsError("Aborted", "the channel pool is closed");
    }
    this.streams.add(stream);
    this.held.set(stream, 0);
    stream.once("close", (info) => {
      this.streams.delete(stream);
      this.pending.delete(stream);
      this.held.delete(stream);
      clearTimeout(this.idleTimers.get(stream));
      this.idleTimers.delete(stream);
      this.saturated = false;
      this.refusal = undefined;
      this.emit("closed", stream, info);
    });
    this.emit("opened", stream);
    this.settle(stream);
    return stream;
  }

  private onGrowFailed(err: unknown): void {
    // The first stream's failure is the caller's error. Beyond it, the target is known to work, so
    // a refused extra stream (the device's or the control plane's stream limit, a throttle) only
    // means: wait for the streams we have.
    if (this.streams.size === 0 || !isStreamsError(err) || !CAPACITY_CODES.has(err.code)) throw err;
    this.saturated = true;
    this.refusal = `${err.code}: ${err.message}`;
  }

  /** Says once per pool that requests now queue, and why no stream can be added. */
  private announce(): void {
    if (this.announced) return;
    this.announced = true;
    const channels = [...this.streams].reduce((n, s) => n + s.channelCapacity, 0);
    const why = this.refusal ?? `this client opens at most ${this.o.maxStreams} streams`;
    this.emit("saturated", `all ${channels} channels on ${this.streams.size} stream(s) are in use (${why})`);
  }

  /** Counts a channel handed out on `stream` until it closes, and gives it net.Socket's ref/unref. */
  private hold(stream: DeviceStream, duplex: Duplex): PooledChannel {
    const channel = duplex as PooledChannel;
    if (!this.held.has(stream)) return Object.assign(channel, { ref: () => channel, unref: () => channel });
    let isHeld = false;
    let open = true;
    const mark = (held: boolean): void => {
      const count = this.held.get(stream);
      if (!open || held === isHeld || count === undefined) return;
      isHeld = held;
      this.held.set(stream, count + (held ? 1 : -1));
      this.settle(stream);
    };
    Object.assign(channel, {
      ref: () => (mark(true), channel),
      unref: () => (mark(false), channel),
    });
    mark(true);
    channel.once("close", () => {
      mark(false);
      open = false;
    });
    return channel;
  }

  private settle(stream: DeviceStream): void {
    if (this.closed || stream.closed || !this.streams.has(stream)) return;
    const busy = (this.pending.get(stream) ?? 0) > 0 || (this.held.get(stream) ?? 0) > 0;
    if (busy) stream.ref();
    else stream.unref();
    if (busy) {
      clearTimeout(this.idleTimers.get(stream));
      this.idleTimers.delete(stream);
    } else if (!this.idleTimers.has(stream)) {
      const timer = setTimeout(() => {
        this.idleTimers.delete(stream);
        if (this.o.keepFirstStream && stream === this.openStreams[0]) return;
        void stream.close();
      }, this.o.idleCloseInMs);
      timer.unref();
      this.idleTimers.set(stream, timer);
    }
  }
}
