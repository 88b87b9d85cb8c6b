/**
 * The multiplexer of one tunnel stream (docs/tunnel-protocol.md): handshake, channels, credit,
 * sequence checks and keepalive over a TunnelTransport. Errors never escape to the event loop: every
 * failure closes the stream with a reason and is reported through the "close" event.
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import { TunnelChannel, type ChannelHost } from "./channel";
import {
  DEFAULT_DATA_PAYLOAD,
  FEATURES,
  type Frame,
  type HelloFields,
  LIMITS,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeFrame,
} from "./codec";
import { TunnelError } from "./errors";
import type { CloseReason, SendableCloseReason, SendableRefuseReason, SendableResetReason } from "./reasons";
import type { TunnelTransport } from "./transport";

export type TunnelRole = "service" | "device";

export interface ChannelRequest {
  id: number;
  /** The opener's opaque label; never an address (§5). */
  label: string;
}

export type ChannelDecision =
  { accept: true } | { accept: false; reason?: SendableRefuseReason; message?: string };

export interface TunnelSessionOptions {
  role: TunnelRole;
  transport: TunnelTransport;
  /** Receive windows this side grants its peer (§5). Defaults keep the relay far from SlowClient. */
  streamWindowBytes?: number;
  streamWindowMessages?: number;
  channelWindowBytes?: number;
  channelWindowMessages?: number;
  maxDataPayload?: number;
  /** Device: most channels open at once; more are refused with ChannelLimit. */
  maxChannels?: number;
  /** Device: decides on each channel the service opens; the default accepts. */
  acceptChannel?: (request: ChannelRequest) => ChannelDecision | Promise<ChannelDecision>;
  handshakeTimeoutInMs?: number;
  keepaliveIntervalInMs?: number;
  keepaliveTimeoutInMs?: number;
  /**
   * Offer early data (§5: DATA after OPEN without waiting for ACCEPT). Default true; false makes
   * this side speak exactly the HELLO of peers released before the feature.
   */
  earlyData?: boolean;
}

export interface TunnelStats {
  /** Channel payload bytes, the figures to report. */
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Frame bytes handed to or received from the transport, headers included. */
  wireBytesSent: number;
  wireBytesReceived: number;
  channelsOpened: number;
}

export interface TunnelCloseInfo {
  reason: CloseReason;
  message: string;
  /** True when the peer sent the CLOSE. */
  byPeer: boolean;
  stats: TunnelStats;
}

interface SessionEvents {
  ready: [];
  channel: [channel: TunnelChannel, request: ChannelRequest];
  close: [info: TunnelCloseInfo];
}

/** How long an openChannel waits for a free channel slot before ChannelLimit. */
export const DEFAULT_CHANNEL_WAIT_MS = 30_000;

function channelLimitError(capacity: number): TunnelError {
  return new TunnelError("ChannelLimit", `all ${capacity} channels the device accepts per stream are in use`);
}

export const DEFAULT_TUNNEL_OPTIONS = {
  streamWindowBytes: 2 * 1024 * 1024,
  streamWindowMessages: 256,
  channelWindowBytes: 512 * 1024,
  channelWindowMessages: 64,
  maxDataPayload: DEFAULT_DATA_PAYLOAD,
  maxChannels: 100,
  handshakeTimeoutInMs: 30_000,
  keepaliveIntervalInMs: 15_000,
  keepaliveTimeoutInMs: 45_000,
} as const;

type Resolved = Omit<Required<TunnelSessionOptions>, "acceptChannel" | "transport" | "role" | "earlyData">;

interface Opening {
  resolve: (channel: TunnelChannel) => void;
  reject: (err: Error) => void;
}

function resolveOptions(options: TunnelSessionOptions): Resolved {
  const o = { ...DEFAULT_TUNNEL_OPTIONS };
  for (const key of Object.keys(o) as Array<keyof Resolved>) {
    const value = options[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${key} must be a positive integer`);
    (o as Record<keyof Resolved, number>)[key] = value;
  }
  const ok =
    o.streamWindowBytes <= LIMITS.maxStreamWindowBytes &&
    o.streamWindowMessages <= LIMITS.maxStreamWindowMessages &&
    o.channelWindowBytes <= o.streamWindowBytes &&
    o.channelWindowMessages <= o.streamWindowMessages &&
    o.maxDataPayload >= LIMITS.minDataPayload &&
    o.maxDataPayload <= LIMITS.maxDataPayload &&
    o.keepaliveTimeoutInMs > o.keepaliveIntervalInMs;
  if (!ok)
    throw new RangeError("tunnel windows or keepalive outside the limits of docs/tunnel-protocol.md §4");
  return o;
}

export class TunnelSession extends EventEmitter<SessionEvents> implements ChannelHost {
  readonly role: TunnelRole;
  readonly stats: TunnelStats = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    wireBytesSent: 0,
    wireBytesReceived: 0,
    channelsOpened: 0,
  };
  private readonly transport: TunnelTransport;
  private readonly options: Resolved;
  private readonly acceptChannel: TunnelSessionOptions["acceptChannel"];
  private state: "new" | "handshake" | "open" | "closed" = "new";
  private closeInfo: TunnelCloseInfo | undefined;
  /** The device stays silent until the service's HELLO (§4). */
  private mayTalk: boolean;
  private peer: HelloFields | undefined;
  /** FEATURES bits this side offers, and those both offered (set by the handshake). */
  private readonly offeredFeatures: number;
  private features = 0;
  private outSeq = 0;
  private inSeq = 0;

  // Credit towards the peer (what this side may send) and granted to it (what it may send).
  private sendStreamBytes = 0;
  private sendStreamMessages = 0;
  private recvStreamBytes: number;
  private recvStreamMessages: number;
  private pendingStreamBytes = 0;
  private pendingStreamMessages = 0;
  private readonly creditDirty = new Set<TunnelChannel>();

  private readonly channels = new Map<number, TunnelChannel>();
  private readonly opening = new Map<number, Opening>();
  /** openChannel calls waiting for one of the device's channel slots, in arrival order. */
  private readonly slotWaiters: Array<{ wake: () => void }> = [];
  /** Highest channel id opened so far; lower ids that are not in `channels` are finished. */
  private highestChannelId = 0;
  /** Channels with something to send, in turn order. */
  private readonly ready = new Set<TunnelChannel>();
  /**
   * REFUSEs of channels never created. A REFUSE for the channel cap returns the OPEN's credit only
   * once sent, so a peer flooding OPENs cannot grow this queue beyond its stream window.
   */
  private readonly controlQueue: Array<{ frame: Frame; creditWhenSent: boolean }> = [];
  private flushScheduled = false;
  private windowScheduled = false;

  private lastReceivedAt = 0;
  private pingOutstanding = false;
  private pingNonce = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private readonly readyPromise: Promise<void>;
  private settleReady!: (err?: Error) => void;

  constructor(options: TunnelSessionOptions) {
    super();
    this.role = options.role;
    this.transport = options.transport;
    this.options = resolveOptions(options);
    this.acceptChannel = options.acceptChannel;
    this.offeredFeatures = options.earlyData === false ? 0 : FEATURES.earlyData;
    this.mayTalk = this.role === "service";
    this.recvStreamBytes = this.options.streamWindowBytes;
    this.recvStreamMessages = this.options.streamWindowMessages;
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.settleReady = (err) => (err ? reject(err) : resolve());
    });
    // Callers that never open a channel must not see an unhandled rejection when the stream fails.
    this.readyPromise.catch(() => undefined);
  }

  get closed(): boolean {
    return this.state === "closed";
  }

  get openChannelCount(): number {
    return this.channels.size;
  }

  /** Attaches to the transport; the service sends its HELLO at once. */
  start(): void {
    if (this.state !== "new") throw new Error("TunnelSession.start() called twice");
    this.state = "handshake";
    this.transport.on("message", this.onMessage);
    this.transport.on("close", this.onTransportClose);
    this.lastReceivedAt = performance.now();
    this.handshakeTimer = setTimeout(
      () => this.fail("HandshakeTimeout", `no HELLO within ${this.options.handshakeTimeoutInMs} ms`),
      this.options.handshakeTimeoutInMs,
    );
    this.handshakeTimer.unref();
    if (this.role === "service") this.sendHello(1, PROTOCOL_VERSION, this.offeredFeatures);
  }

  /** Resolves once both HELLOs are exchanged; rejects with the close reason. */
  waitReady(): Promise<void> {
    return this.readyPromise;
  }

  /** True once both sides offered early data in their HELLOs (§5). */
  get earlyData(): boolean {
    return (this.features & FEATURES.earlyData) !== 0;
  }

  /** The most channels the device accepts at once (its HELLO); undefined before the handshake. */
  get channelCapacity(): number | undefined {
    return this.peer?.maxChannels;
  }

  /**
   * Service: opens a channel to the device's mapped target; resolves on ACCEPT, rejects on REFUSE.
   * When the device's channel limit is reached, the request waits (first come, first served) up to
   * `waitInMs` for a channel to finish, then rejects with ChannelLimit: a connection pool or a
   * parallel download briefly above the limit queues instead of failing.
   * `early`: when the device supports early data (§5), resolve at once, without waiting for the
   * ACCEPT, so the first bytes leave with the OPEN; a REFUSE then errors the channel instead.
   */
  async openChannel(label = "", waitInMs = DEFAULT_CHANNEL_WAIT_MS, early = false): Promise<TunnelChannel> {
    if (this.role !== "service")
      throw new TunnelError("ProtocolError", "only the service side opens channels");
    await this.readyPromise;
    const waitUntil = performance.now() + waitInMs;
    for (;;) {
      if (this.closeInfo) throw this.closedError();
      if (this.channels.size < this.peer!.maxChannels && this.slotWaiters.length === 0) break;
      await this.waitForSlot(waitUntil - performance.now());
      if (this.closeInfo) throw this.closedError();
      if (this.channels.size < this.peer!.maxChannels) break;
    }
    if (this.highestChannelId >= 0xffffffff) throw new TunnelError("ChannelLimit", "channel ids exhausted");
    const channel = this.createChannel(++this.highestChannelId, label);
    if (early && this.earlyData) {
      // The application writes at once; its first bytes leave with the OPEN, and a REFUSE reaches
      // it as the channel's error (the session destroys it below), as a reset would.
      const ignore = (): void => undefined;
      this.opening.set(channel.id, { resolve: ignore, reject: ignore });
      channel.exposed = true;
      channel.queueControl("open");
      return channel;
    }
    const accepted = new Promise<TunnelChannel>((resolve, reject) => {
      this.opening.set(channel.id, { resolve, reject });
    });
    channel.queueControl("open");
    return accepted;
  }

  /**
   * Ends the stream: CLOSE to the peer, the transport closed, and every open channel destroyed. The
   * application asked for it, so its channels close without an error; the peer's see the reason.
   */
  close(reason: SendableCloseReason = "Normal", message = ""): void {
    this.shutdown(reason, message, false, true, true);
  }

  // ---------------------------------------------------------------- ChannelHost

  wake(channel: TunnelChannel): void {
    if (this.state === "closed") return;
    this.ready.add(channel);
    this.scheduleFlush();
  }

  consumed(channel: TunnelChannel, bytes: number, messages: number): void {
    if (this.state === "closed") return;
    // The peer sends no more DATA after its FIN, so channel credit would be wasted on it.
    if (!channel.retired && !channel.finReceived) {
      channel.pendingBytes += bytes;
      channel.pendingMessages += messages;
      this.creditDirty.add(channel);
    }
    this.creditStream(bytes, messages, channel);
  }

  localDestroy(channel: TunnelChannel, err: Error | null): void {
    if (channel.retired || this.state === "closed") return;
    const code: unknown = err && "code" in err ? err.code : undefined;
    const reason: SendableResetReason =
      channel.abortReason?.reason ?? (err ? "ApplicationError" : "Cancelled");
    // Only the error's code crosses the tunnel: its text may hold local details (§7).
    const message = channel.abortReason?.message ?? (typeof code === "string" ? code : "");
    channel.queueReset(reason, message);
    this.retire(channel);
  }

  finSent(channel: TunnelChannel): void {
    if (channel.finReceived) this.retire(channel);
  }

  // ---------------------------------------------------------------- sending

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => this.flush());
  }

  /** Sends what credit allows, one frame per channel per turn so channels share the stream fairly. */
  private flush(): void {
    this.flushScheduled = false;
    while (this.state === "open" && this.sendStreamMessages > 0) {
      const control = this.controlQueue.shift();
      if (control) {
        this.sendStreamMessages--;
        this.sendRaw(encodeFrame(this.outSeq, control.frame));
        if (control.creditWhenSent) this.creditStream(0, 1);
        continue;
      }
      let progressed = false;
      for (const channel of [...this.ready]) {
        if (this.state !== "open" || this.sendStreamMessages === 0) return;
        const out = channel.nextFrame(this.outSeq, this.sendStreamBytes);
        this.ready.delete(channel);
        if (!out) {
          if (channel.wantsToSend()) this.ready.add(channel);
          continue;
        }
        if (channel.wantsToSend()) this.ready.add(channel);
        progressed = true;
        this.sendStreamMessages--;
        this.sendStreamBytes -= out.dataBytes;
        this.stats.bytesSent += out.dataBytes;
        this.sendRaw(out.frame);
        if (out.callbacks) for (const cb of out.callbacks) cb();
      }
      if (!progressed) return;
    }
  }

  private sendRaw(frame: Buffer): void {
    this.outSeq = (this.outSeq + 1) >>> 0;
    this.stats.framesSent++;
    this.stats.wireBytesSent += frame.length;
    try {
      this.transport.send(frame);
    } catch (err) {
      // The contract says send never throws; a transport that does must not take the process down.
      const detail = err instanceof Error ? err.message : String(err);
      this.shutdown("TransportClosed", `relay send failed: ${detail}`, false, false);
    }
  }

  private sendStream(frame: Frame): void {
    this.sendRaw(encodeFrame(this.outSeq, frame));
  }

  private sendHello(minVersion: number, maxVersion: number, features: number): void {
    const o = this.options;
    this.sendStream({
      features,
      type: "hello",
      minVersion,
      maxVersion,
      streamWindowBytes: o.streamWindowBytes,
      streamWindowMessages: o.streamWindowMessages,
      channelWindowBytes: o.channelWindowBytes,
      channelWindowMessages: o.channelWindowMessages,
      maxChannels: o.maxChannels,
      maxDataPayload: o.maxDataPayload,
    });
  }

  /** Returns the credit consumed since the last WINDOW, for the stream and every channel, in one frame. */
  private sendWindow(): void {
    this.windowScheduled = false;
    if (this.state !== "open") return;
    const entries: Array<{ channel: number; bytes: number; messages: number }> = [];
    for (const channel of this.creditDirty) {
      if (
        !channel.retired &&
        !channel.finReceived &&
        (channel.pendingBytes > 0 || channel.pendingMessages > 0)
      ) {
        entries.push({ channel: channel.id, bytes: channel.pendingBytes, messages: channel.pendingMessages });
        channel.recvBytes += channel.pendingBytes;
        channel.recvMessages += channel.pendingMessages;
      }
      channel.pendingBytes = 0;
      channel.pendingMessages = 0;
    }
    this.creditDirty.clear();
    let streamBytes = this.pendingStreamBytes;
    let streamMessages = this.pendingStreamMessages;
    this.recvStreamBytes += streamBytes;
    this.recvStreamMessages += streamMessages;
    this.pendingStreamBytes = 0;
    this.pendingStreamMessages = 0;
    for (
      let at = 0;
      at < entries.length || streamBytes > 0 || streamMessages > 0;
      at += LIMITS.maxWindowEntries
    ) {
      const channels = entries.slice(at, at + LIMITS.maxWindowEntries);
      this.sendStream({ type: "window", streamBytes, streamMessages, channels });
      streamBytes = 0;
      streamMessages = 0;
      if (at + LIMITS.maxWindowEntries >= entries.length) break;
    }
  }

  // ---------------------------------------------------------------- receiving

  private readonly onMessage = (raw: Uint8Array): void => {
    if (this.state === "closed") return;
    try {
      this.receive(raw);
    } catch (err) {
      this.fail(
        "InternalError",
        `failed to process a frame: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };

  private readonly onTransportClose = (reason: string): void => {
    this.shutdown("TransportClosed", `relay connection closed: ${reason}`, false, false);
  };

  private receive(raw: Uint8Array): void {
    this.stats.framesReceived++;
    this.stats.wireBytesReceived += raw.byteLength;
    this.lastReceivedAt = performance.now();
    const decoded = decodeFrame(raw);
    if (!decoded.ok) return this.fail(decoded.error.code as SendableCloseReason, decoded.error.message);
    if (decoded.seq !== this.inSeq) {
      return this.fail(
        "SequenceError",
        `expected frame ${this.inSeq}, got ${decoded.seq} (lost, duplicated or reordered)`,
      );
    }
    this.inSeq = (this.inSeq + 1) >>> 0;
    const frame = decoded.frame;
    if (frame.type === "close") {
      return this.shutdown(frame.reason, frame.message, true, false);
    }
    if (this.state === "handshake") {
      if (frame.type !== "hello")
        return this.fail("ProtocolError", `expected HELLO, got ${frame.type.toUpperCase()}`);
      return this.onHello(frame);
    }
    switch (frame.type) {
      case "hello":
        return this.fail("ProtocolError", "HELLO after the handshake");
      case "ping":
        return this.sendStream({ type: "pong", nonce: frame.nonce });
      case "pong":
        this.pingOutstanding = false;
        return;
      case "window":
        return this.onWindow(frame);
      default:
        return this.onChannelFrame(frame);
    }
  }

  private onHello(hello: HelloFields): void {
    if (this.role === "device") {
      this.mayTalk = true;
      const version = Math.min(hello.maxVersion, PROTOCOL_VERSION);
      if (version < Math.max(hello.minVersion, 1)) {
        return this.fail(
          "VersionMismatch",
          `the service offers versions ${hello.minVersion}..${hello.maxVersion}; this device speaks 1..${PROTOCOL_VERSION}`,
        );
      }
      this.sendHello(version, version, this.offeredFeatures & (hello.features ?? 0));
    } else if (hello.minVersion !== hello.maxVersion || hello.maxVersion > PROTOCOL_VERSION) {
      return this.fail(
        "VersionMismatch",
        `the device chose versions ${hello.minVersion}..${hello.maxVersion}; this service speaks 1..${PROTOCOL_VERSION}`,
      );
    }
    this.peer = hello;
    this.features = this.offeredFeatures & (hello.features ?? 0);
    this.sendStreamBytes = hello.streamWindowBytes;
    this.sendStreamMessages = hello.streamWindowMessages;
    this.state = "open";
    clearTimeout(this.handshakeTimer);
    this.armKeepalive();
    this.settleReady();
    this.emit("ready");
    this.scheduleFlush();
  }

  private onWindow(frame: Extract<Frame, { type: "window" }>): void {
    const peer = this.peer!;
    this.sendStreamBytes += frame.streamBytes;
    this.sendStreamMessages += frame.streamMessages;
    if (
      this.sendStreamBytes > peer.streamWindowBytes ||
      this.sendStreamMessages > peer.streamWindowMessages
    ) {
      return this.fail("FlowControlError", "the peer returned more stream credit than its window");
    }
    for (const entry of frame.channels) {
      const channel = this.channels.get(entry.channel);
      if (!channel) {
        if (entry.channel > this.highestChannelId) {
          return this.fail("ProtocolError", `WINDOW for channel ${entry.channel}, which was never opened`);
        }
        continue;
      }
      channel.sendBytes += entry.bytes;
      channel.sendMessages += entry.messages;
      if (channel.sendBytes > peer.channelWindowBytes || channel.sendMessages > peer.channelWindowMessages) {
        return this.fail(
          "FlowControlError",
          `the peer returned more credit than its window on channel ${channel.id}`,
        );
      }
      if (channel.wantsToSend()) this.ready.add(channel);
    }
    this.scheduleFlush();
  }

  private onChannelFrame(frame: Extract<Frame, { channel: number }>): void {
    if (this.recvStreamMessages < 1)
      return this.fail("FlowControlError", "channel frame beyond the stream's message credit");
    this.recvStreamMessages--;
    const isData = frame.type === "data";
    if (isData && frame.payload.length > this.recvStreamBytes) {
      return this.fail("FlowControlError", "DATA beyond the stream's byte credit");
    }
    if (isData) this.recvStreamBytes -= frame.payload.length;
    if (frame.type === "open") return this.onOpen(frame.channel, frame.label);

    const channel = this.channels.get(frame.channel);
    if (!channel) {
      if (frame.channel > this.highestChannelId) {
        return this.fail(
          "ProtocolError",
          `${frame.type.toUpperCase()} for channel ${frame.channel}, which was never opened`,
        );
      }
      // A channel this side has finished: the race with our RESET (§5). Return the credit at once.
      return this.creditStream(isData ? frame.payload.length : 0, 1);
    }
    switch (frame.type) {
      case "accept":
      case "refuse": {
        const opening = this.opening.get(channel.id);
        if (this.role !== "service" || !opening) {
          return this.fail(
            "ProtocolError",
            `unexpected ${frame.type.toUpperCase()} for channel ${channel.id}`,
          );
        }
        this.opening.delete(channel.id);
        if (frame.type === "accept") {
          channel.peerMaySend = true;
          this.stats.channelsOpened++;
          channel.exposed = true;
          opening.resolve(channel);
        } else {
          const err = new TunnelError(
            frame.reason,
            `channel refused: ${frame.reason} ${frame.message}`.trim(),
            true,
          );
          this.retire(channel);
          // Exposed only with early data: the application already holds the channel.
          channel.destroy(channel.exposed ? err : undefined);
          opening.reject(err);
        }
        return this.creditStream(0, 1);
      }
      case "data":
        if (!channel.peerMaySend || channel.finReceived) {
          return this.fail(
            "ProtocolError",
            `DATA on channel ${channel.id} ${channel.finReceived ? "after FIN" : "before ACCEPT"}`,
          );
        }
        if (frame.payload.length > channel.recvBytes || channel.recvMessages < 1) {
          return this.fail("FlowControlError", `DATA beyond the credit of channel ${channel.id}`);
        }
        this.stats.bytesReceived += frame.payload.length;
        // Credit for DATA comes back when the application reads it (TunnelChannel.consumed).
        return channel.receiveData(frame.payload);
      case "fin":
        if (!channel.peerMaySend || channel.finReceived) {
          return this.fail("ProtocolError", `unexpected FIN on channel ${channel.id}`);
        }
        channel.receiveFin();
        if (channel.finSentFlag) this.retire(channel);
        return this.creditStream(0, 1);
      case "reset": {
        this.retire(channel);
        const err = new TunnelError(
          frame.reason,
          `channel reset by peer: ${frame.reason} ${frame.message}`.trim(),
          true,
        );
        const opening = this.opening.get(channel.id);
        this.opening.delete(channel.id);
        opening?.reject(err);
        channel.destroy(channel.exposed ? err : undefined);
        return this.creditStream(0, 1);
      }
    }
  }

  private onOpen(id: number, label: string): void {
    if (this.role !== "device") return this.fail("ProtocolError", "the device may not open channels");
    if (id <= this.highestChannelId) {
      return this.fail(
        "ProtocolError",
        `OPEN for channel ${id}: ids must increase (last was ${this.highestChannelId})`,
      );
    }
    this.highestChannelId = id;
    if (this.channels.size >= this.options.maxChannels) {
      return this.refuse(id, "ChannelLimit", `at most ${this.options.maxChannels} channels per stream`, true);
    }
    this.creditStream(0, 1);
    const channel = this.createChannel(id, label);
    // Early DATA and FIN wait in the channel's buffer until it is accepted, or go with its REFUSE.
    if (this.earlyData) channel.peerMaySend = true;
    const request: ChannelRequest = { id, label };
    const decide = (decision: ChannelDecision): void => {
      if (channel.retired || this.state !== "open") return;
      if (!decision.accept) {
        this.retire(channel);
        channel.destroy();
        return this.refuse(id, decision.reason ?? "Refused", decision.message ?? "");
      }
      this.stats.channelsOpened++;
      channel.exposed = true;
      channel.queueControl("accept");
      this.emit("channel", channel, request);
    };
    if (!this.acceptChannel) return decide({ accept: true });
    let result: ChannelDecision | Promise<ChannelDecision>;
    try {
      result = this.acceptChannel(request);
    } catch {
      return decide({ accept: false, reason: "Refused" });
    }
    Promise.resolve(result).then(decide, () => decide({ accept: false, reason: "Refused" }));
  }

  private refuse(id: number, reason: SendableRefuseReason, message: string, creditWhenSent = false): void {
    this.controlQueue.push({ frame: { type: "refuse", channel: id, reason, message }, creditWhenSent });
    this.scheduleFlush();
  }

  /** Queues stream credit for the peer; a WINDOW goes out once enough is pending (§5 batching). */
  private creditStream(bytes: number, messages: number, channel?: TunnelChannel): void {
    this.pendingStreamBytes += bytes;
    this.pendingStreamMessages += messages;
    const o = this.options;
    const due =
      this.pendingStreamBytes * 4 >= o.streamWindowBytes ||
      this.pendingStreamMessages * 4 >= o.streamWindowMessages ||
      (channel !== undefined &&
        (channel.pendingBytes * 2 >= o.channelWindowBytes ||
          channel.pendingMessages * 2 >= o.channelWindowMessages));
    if (due && !this.windowScheduled) {
      this.windowScheduled = true;
      process.nextTick(() => this.sendWindow());
    }
  }

  private createChannel(id: number, label: string): TunnelChannel {
    const peer = this.peer!;
    const o = this.options;
    const channel = new TunnelChannel(id, label, this, {
      sendBytes: peer.channelWindowBytes,
      sendMessages: peer.channelWindowMessages,
      recvBytes: o.channelWindowBytes,
      recvMessages: o.channelWindowMessages,
      maxDataPayload: Math.min(peer.maxDataPayload, o.maxDataPayload),
    });
    this.channels.set(id, channel);
    return channel;
  }

  private retire(channel: TunnelChannel): void {
    channel.retired = true;
    this.channels.delete(channel.id);
    this.slotWaiters.shift()?.wake();
  }

  /** Resolves when a channel finishes (its slot goes to the first waiter); rejects after `ms`. */
  private waitForSlot(ms: number): Promise<void> {
    const capacity = this.peer!.maxChannels;
    if (ms <= 0) return Promise.reject(channelLimitError(capacity));
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.slotWaiters.splice(this.slotWaiters.indexOf(waiter), 1);
        reject(channelLimitError(capacity));
      }, ms);
      this.slotWaiters.push(waiter);
    });
  }

  // ---------------------------------------------------------------- keepalive and shutdown

  private armKeepalive(): void {
    const o = this.options;
    const idleFor = performance.now() - this.lastReceivedAt;
    if (idleFor >= o.keepaliveTimeoutInMs) {
      return this.fail("KeepaliveTimeout", `nothing received for ${Math.round(idleFor)} ms`);
    }
    if (idleFor >= o.keepaliveIntervalInMs && !this.pingOutstanding) {
      this.pingOutstanding = true;
      this.sendStream({ type: "ping", nonce: ++this.pingNonce });
    }
    const next = this.pingOutstanding ? o.keepaliveTimeoutInMs : o.keepaliveIntervalInMs;
    this.keepaliveTimer = setTimeout(() => this.armKeepalive(), Math.max(1, next - idleFor));
    this.keepaliveTimer.unref();
  }

  private fail(reason: SendableCloseReason, message: string): void {
    this.shutdown(reason, message, false, reason !== "TransportClosed");
  }

  private closedError(): TunnelError {
    const info = this.closeInfo!;
    return new TunnelError(info.reason, `stream closed: ${info.reason} ${info.message}`.trim(), info.byPeer);
  }

  private shutdown(
    reason: CloseReason,
    message: string,
    byPeer: boolean,
    notifyPeer: boolean,
    byApplication = false,
  ): void {
    if (this.state === "closed") return;
    const wasStarted = this.state !== "new";
    this.state = "closed";
    this.closeInfo = { reason, message, byPeer, stats: this.stats };
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.keepaliveTimer);
    if (wasStarted) {
      this.transport.off("message", this.onMessage);
      this.transport.off("close", this.onTransportClose);
      if (notifyPeer && this.mayTalk) this.sendStream({ type: "close", reason, message });
      this.transport.close(reason, byPeer);
    }
    // Waiters see the stream closed when they wake.
    for (const waiter of this.slotWaiters.splice(0)) waiter.wake();
    const err = this.closedError();
    // Channels end without an error only when this application closed the stream itself.
    const channelError = byApplication ? undefined : err;
    this.settleReady(err);
    for (const [id, opening] of this.opening) {
      this.opening.delete(id);
      opening.reject(err);
    }
    const channels = [...this.channels.values()];
    this.channels.clear();
    this.ready.clear();
    this.creditDirty.clear();
    for (const channel of channels) {
      channel.retired = true;
      channel.destroy(channel.exposed ? channelError : undefined);
    }
    this.emit("close", this.closeInfo);
  }
}
