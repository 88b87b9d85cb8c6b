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
  /** An extra stream (beyond the first) with no channel for this long is closed (default 30 s). */
  idleCloseInMs?: number;
}

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

const DEFAULTS = { overflowAfterInMs: 500, queueTimeoutInMs: 60_000, maxStreams: 4, idleCloseInMs: 30_000 };

/** Failures of an extra stream that mean "no more streams for now" (a device at its limit rejects). */
const CAPACITY_CODES = new Set(["TooManyStreams", "Throttled", "StreamRejected"]);

export class ChannelPool extends EventEmitter<PoolEvents> {
  private readonly streams = new Set<DeviceStream>();
  private opening: Promise<DeviceStream> | undefined;
  private readonly idleTimers = new Map<DeviceStream, NodeJS.Timeout>();
  private readonly pending = new Map<DeviceStream, number>();
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
  async openChannel(label = ""): Promise<Duplex> {
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
      try {
        const channel = await stream.openChannel(label, {
          waitInMs: Math.max(0, wait),
          // forward splices a socket into it: its first bytes go with the OPEN (tunnel-protocol §5).
          early: true,
        });
        this.touch(stream);
        return channel;
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
    stream.once("close", (info) => {
      this.streams.delete(stream);
      this.pending.delete(stream);
      clearTimeout(this.idleTimers.get(stream));
      this.idleTimers.delete(stream);
      this.saturated = false;
      this.refusal = undefined;
      this.emit("closed", stream, info);
    });
    this.emit("opened", stream);
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

  /** An extra stream that carries no channel for idleCloseInMs is closed; the first one stays. */
  private touch(stream: DeviceStream): void {
    clearTimeout(this.idleTimers.get(stream));
    const arm = (): void => {
      const timer = setTimeout(() => {
        if (stream === this.openStreams[0]) return;
        if (stream.openChannelCount > 0) return arm();
        this.idleTimers.delete(stream);
        void stream.close();
      }, this.o.idleCloseInMs);
      timer.unref();
      this.idleTimers.set(stream, timer);
    };
    arm();
  }
}
