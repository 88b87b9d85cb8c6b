/**
 * The multiplexer of one tunnel stream (docs/tunnel-protocol.md): handshake, channels, credit,
 * sequence checks and keepalive over a TunnelTransport. Errors never escape to the event loop: every
 * failure closes the stream with a reason and is reported through the "close" event.
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import { TunnelChannel, type ChannelHost } from "./channel";
import {
  FEATURES,
  type Frame,
  type HelloFields,
  PROTOCOL_VERSION,
  SHARED_DATA_PAYLOAD,
  decodeFrame,
  encodeFrame,
} from "./codec";
import { StreamCredit } from "./credit";
import { TunnelError } from "./errors";
import { helloFrame, negotiate, offeredFeatures } from "./handshake";
import { Keepalive } from "./keepalive";
import {
  type ChannelDecision,
  type ChannelRequest,
  type ResolvedOptions,
  type TunnelCloseInfo,
  type TunnelRole,
  type TunnelSessionOptions,
  type TunnelStats,
  resolveOptions,
} from "./options";
import type {
  CloseReason,
  RefuseReason,
  SendableCloseReason,
  SendableRefuseReason,
  SendableResetReason,
} from "./reasons";
import { SlotQueue } from "./slots";
import type { TunnelTransport } from "./transport";

interface SessionEvents {
  ready: [];
  channel: [channel: TunnelChannel, request: ChannelRequest];
  close: [info: TunnelCloseInfo];
}

/** How long an openChannel waits for a free channel slot before ChannelLimit. */
export const DEFAULT_CHANNEL_WAIT_MS = 30_000;

/**
 * How long the side that sent the first CLOSE waits for the peer's answer (§4) before it leaves the
 * relay anyway: a peer that is up answers within a round trip, or a few event-loop turns of backlog
 * later; one that is hung must not hold a closing command or a stopping agent for long.
 */
export const CLOSE_ANSWER_TIMEOUT_MS = 2_000;

function refusedError(reason: RefuseReason, message: string): TunnelError {
  return new TunnelError(reason, `channel refused: ${reason} ${message}`.trim(), true);
}

interface Opening {
  resolve: (channel: TunnelChannel) => void;
  reject: (err: Error) => void;
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
  private readonly options: ResolvedOptions;
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
  private readonly credit: StreamCredit;

  private readonly channels = new Map<number, TunnelChannel>();
  private readonly opening = new Map<number, Opening>();
  /** openChannel calls waiting for one of the device's channel slots, in arrival order. */
  private readonly slotWaiters = new SlotQueue();
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

  private readonly keepalive: Keepalive;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private readonly readyPromise: Promise<void>;
  private settleReady!: (err?: Error) => void;

  constructor(options: TunnelSessionOptions) {
    super();
    this.role = options.role;
    this.transport = options.transport;
    this.options = resolveOptions(options);
    this.acceptChannel = options.acceptChannel;
    this.offeredFeatures = offeredFeatures(options);
    this.mayTalk = this.role === "service";
    this.credit = new StreamCredit(this.options);
    this.keepalive = new Keepalive(
      this.options.keepaliveIntervalInMs,
      this.options.keepaliveTimeoutInMs,
      (nonce) => this.sendStream({ type: "ping", nonce }),
      (idleFor) => this.fail("KeepaliveTimeout", `nothing received for ${Math.round(idleFor)} ms`),
    );
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
    this.keepalive.received();
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

  /** True once both sides offered implicit accept (§5): early-data OPENs then get no ACCEPT. */
  get implicitAccept(): boolean {
    return this.earlyData && (this.features & FEATURES.implicitAccept) !== 0;
  }

  /** True once both sides offered the close answer (§4): a CLOSE is answered before its sender leaves. */
  get closeAnswer(): boolean {
    return (this.features & FEATURES.closeAnswer) !== 0;
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
      await this.slotWaiters.wait(waitUntil - performance.now(), this.peer!.maxChannels);
      if (this.closeInfo) throw this.closedError();
      if (this.channels.size < this.peer!.maxChannels) break;
    }
    if (this.highestChannelId >= 0xffffffff) throw new TunnelError("ChannelLimit", "channel ids exhausted");
    const channel = this.createChannel(++this.highestChannelId, label);
    if (early && this.earlyData) {
      // The application writes at once; its first bytes leave with the OPEN, and a REFUSE reaches
      // it as the channel's error (the session destroys it below), as a reset would.
      channel.exposed = true;
      if (this.implicitAccept) {
        // Nothing waits for the ACCEPT, so the device sends none: a frame fewer per channel.
        channel.acceptImplied = true;
        channel.peerMaySend = true;
      } else {
        const ignore = (): void => undefined;
        this.opening.set(channel.id, { resolve: ignore, reject: ignore });
      }
      // Held for one event-loop turn: a socket's first bytes arrive the turn after its accept, and
      // bytes written by then leave in the same relay write as the OPEN (the write wakes it), one
      // write and one read fewer at every hop of a short connection. A server that speaks first
      // waits one turn, microseconds against the relay's round trip.
      channel.queueControl("open", false);
      setImmediate(this.holdOpen, channel);
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

  /** An early OPEN's hold (openChannel): two check phases, with no closure per channel. */
  private readonly holdOpen = (channel: TunnelChannel): void => void setImmediate(this.releaseOpen, channel);
  private readonly releaseOpen = (channel: TunnelChannel): void => this.wake(channel);

  // ---------------------------------------------------------------- ChannelHost

  wake(channel: TunnelChannel): void {
    if (this.state === "closed" || channel.retired) return;
    this.ready.add(channel);
    this.scheduleFlush();
  }

  consumed(channel: TunnelChannel, bytes: number, messages: number): void {
    if (this.state === "closed") return;
    if (this.credit.consumed(channel, bytes, messages)) this.scheduleWindow();
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
    while (this.state === "open" && this.credit.sendMessages > 0) {
      const control = this.controlQueue.shift();
      if (control) {
        this.credit.sendMessages--;
        this.sendRaw(encodeFrame(this.outSeq, control.frame));
        if (control.creditWhenSent) this.creditStream(0, 1);
        continue;
      }
      let progressed = false;
      for (const channel of [...this.ready]) {
        if (this.state !== "open" || this.credit.sendMessages === 0) return;
        // A full-size frame holds the stream for the time it takes to cross the link, so while other
        // channels wait their turn each frame is kept to SHARED_DATA_PAYLOAD: an interactive channel
        // beside a bulk one waits behind 64 KiB, not 256 KiB; a channel alone gets whole frames.
        const cap = this.ready.size > 1 ? SHARED_DATA_PAYLOAD : this.credit.sendBytes;
        const out = channel.nextFrame(this.outSeq, Math.min(this.credit.sendBytes, cap));
        this.ready.delete(channel);
        if (!out) {
          if (channel.wantsToSend()) this.ready.add(channel);
          continue;
        }
        if (channel.wantsToSend()) this.ready.add(channel);
        progressed = true;
        this.credit.sendMessages--;
        this.credit.sendBytes -= out.dataBytes;
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
    this.sendStream(helloFrame(this.options, minVersion, maxVersion, features));
  }

  /** Returns the credit consumed since the last WINDOW, for the stream and every channel, in one frame. */
  private sendWindow(): void {
    this.windowScheduled = false;
    if (this.state !== "open") return;
    for (const frame of this.credit.takeWindows()) this.sendStream(frame);
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
    this.keepalive.received();
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
        return this.keepalive.ponged();
      case "window":
        return this.onWindow(frame);
      default:
        return this.onChannelFrame(frame);
    }
  }

  private onHello(hello: HelloFields): void {
    if (this.role === "device") this.mayTalk = true;
    const outcome = negotiate(this.role, hello, this.offeredFeatures);
    if (!outcome.ok) return this.fail("VersionMismatch", outcome.message);
    if (outcome.answer)
      this.sendHello(outcome.answer.version, outcome.answer.version, outcome.answer.features);
    this.peer = hello;
    this.features = outcome.features;
    this.credit.start(hello);
    this.state = "open";
    clearTimeout(this.handshakeTimer);
    this.keepalive.arm();
    this.settleReady();
    this.emit("ready");
    this.scheduleFlush();
  }

  private onWindow(frame: Extract<Frame, { type: "window" }>): void {
    const peer = this.peer!;
    if (!this.credit.returned(frame.streamBytes, frame.streamMessages, peer)) {
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
    const overrun = this.credit.charge(frame);
    if (overrun) return this.fail("FlowControlError", overrun);
    const isData = frame.type === "data";
    if (frame.type === "open") return this.onOpen(frame.channel, frame.label, frame.noAccept === true);

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
    if (channel.acceptImplied) {
      // The device's first frame on a channel opened without ACCEPT stands for it (§5).
      channel.acceptImplied = false;
      if (frame.type === "refuse") {
        this.retire(channel);
        channel.destroy(refusedError(frame.reason, frame.message));
        return this.creditStream(0, 1);
      }
      this.stats.channelsOpened++;
    }
    switch (frame.type) {
      case "refuse":
      case "accept": {
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
          const err = refusedError(frame.reason, frame.message);
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

  private onOpen(id: number, label: string, noAccept: boolean): void {
    if (this.role !== "device") return this.fail("ProtocolError", "the device may not open channels");
    if (noAccept && !this.implicitAccept) {
      return this.fail(
        "ProtocolError",
        `OPEN for channel ${id} asks for no ACCEPT, which was not negotiated`,
      );
    }
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
      // Implicit accept: the channel's first frame (DATA, FIN or RESET) tells the service instead.
      if (!noAccept) channel.queueControl("accept");
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
    if (this.credit.add(bytes, messages, channel)) this.scheduleWindow();
  }

  private scheduleWindow(): void {
    if (this.windowScheduled) return;
    this.windowScheduled = true;
    process.nextTick(() => this.sendWindow());
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
    this.slotWaiters.wakeOne();
  }

  // ---------------------------------------------------------------- shutdown

  private fail(reason: SendableCloseReason, message: string): void {
    this.shutdown(reason, message, false, reason !== "TransportClosed");
  }

  /**
   * Sends this side's CLOSE, if it has one to send, and leaves the relay. The byte report goes out
   * before any CLOSE: once the peer has the CLOSE it may leave, and the relay then ends this side's
   * connection. With the close answer (§4) the receiver of a CLOSE answers it, and the sender stays
   * until that answer (a crossing CLOSE is one too), so the report of the side that is late to
   * process the CLOSE reaches the relay before anyone leaves; without it, the sender leaves at once.
   */
  private leave(reason: CloseReason, message: string, byPeer: boolean, sendClose: boolean): void {
    const answer = byPeer && this.closeAnswer;
    if (sendClose || answer) {
      this.transport.sendReport?.();
      this.sendStream(
        answer ? { type: "close", reason: "Normal", message: "" } : { type: "close", reason, message },
      );
    }
    // Only an orderly close waits: one for an error (a silent peer, a corrupt frame) rarely has a
    // peer left to answer, and the report it would protect matters less than leaving at once.
    const orderly = reason === "Normal" || reason === "GoingAway";
    if (!sendClose || !this.closeAnswer || !orderly) return this.transport.close(reason, byPeer);
    const done = (): void => {
      clearTimeout(timer);
      this.transport.off("message", onFrame);
      this.transport.off("close", done);
      this.transport.close(reason, false);
    };
    // Frames the peer sent before it saw the CLOSE are dropped: the channels they were for are gone.
    const onFrame = (raw: Uint8Array): void => {
      const decoded = decodeFrame(raw);
      if (!decoded.ok || decoded.frame.type === "close") done();
    };
    const timer = setTimeout(done, CLOSE_ANSWER_TIMEOUT_MS);
    timer.unref();
    this.transport.on("message", onFrame);
    this.transport.on("close", done);
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
    this.keepalive.stop();
    if (wasStarted) {
      this.transport.off("message", this.onMessage);
      this.transport.off("close", this.onTransportClose);
      this.leave(reason, message, byPeer, notifyPeer && this.mayTalk);
    }
    // Waiters see the stream closed when they wake.
    this.slotWaiters.wakeAll();
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
    this.credit.clear();
    for (const channel of channels) {
      channel.retired = true;
      channel.destroy(channel.exposed ? channelError : undefined);
    }
    this.emit("close", this.closeInfo);
  }
}
