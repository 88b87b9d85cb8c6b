/**
 * One channel of a tunnel stream as a Node Duplex. It owns the channel's half of the flow control of
 * docs/tunnel-protocol.md §5: the send queue and credit towards the peer, and the accounting of what
 * the application has consumed, which becomes credit for the peer. The session (its ChannelHost)
 * decides when frames go out and which channel is next.
 */
import { Duplex } from "node:stream";
import { encodeData, encodeFrame } from "./codec";
import type { SendableResetReason } from "./reasons";

export interface ChannelHost {
  /** The channel has a frame to send (or may have, after new credit). */
  wake(channel: TunnelChannel): void;
  /** The application consumed this much received data: credit to return to the peer. */
  consumed(channel: TunnelChannel, bytes: number, messages: number): void;
  /** The application destroyed the channel, or its writable side has sent FIN. */
  localDestroy(channel: TunnelChannel, err: Error | null): void;
  finSent(channel: TunnelChannel): void;
}

export interface ChannelLimits {
  /** Credit the peer granted for this channel: what this side may send. */
  sendBytes: number;
  sendMessages: number;
  /** Credit this side granted: what the peer may send before it hears from us. */
  recvBytes: number;
  recvMessages: number;
  maxDataPayload: number;
}

type Callback = (err?: Error | null) => void;
type OutItem =
  | { kind: "data"; chunk: Buffer; cb: Callback | undefined }
  | { kind: "open" | "accept" | "fin"; cb: Callback | undefined };

export interface OutFrame {
  frame: Buffer;
  dataBytes: number;
  /** Write callbacks to run once the frame has been handed to the transport. */
  callbacks: Callback[] | undefined;
}

export class TunnelChannel extends Duplex {
  // --- send side: what this side may still send, and what waits for credit.
  sendBytes: number;
  sendMessages: number;
  private items: OutItem[] = [];
  private head = 0;
  private headOffset = 0;
  private resetToSend: { reason: SendableResetReason; message: string } | undefined;
  finSentFlag = false;

  // --- receive side.
  recvBytes: number;
  recvMessages: number;
  /** Consumed by the application but not yet returned to the peer in a WINDOW. */
  pendingBytes = 0;
  pendingMessages = 0;
  finReceived = false;
  /** The peer may send DATA: the service has the ACCEPT, or the device has sent it. */
  peerMaySend = false;
  private pushedBytes = 0;
  private creditedBytes = 0;
  private frameEnds: number[] = [];
  private frameEndsHead = 0;

  /**
   * Service: the OPEN asks the device for no ACCEPT (§5, implicitAccept); cleared by the device's
   * first frame on the channel, which stands for the ACCEPT. Until then a REFUSE may still come.
   */
  acceptImplied = false;
  /** The application has the Duplex (accepted); errors before that stay inside the session. */
  exposed = false;
  /** No frame may be sent or received for this id any more (finished, reset or refused). */
  retired = false;

  constructor(
    readonly id: number,
    readonly label: string,
    private readonly host: ChannelHost,
    private readonly limits: ChannelLimits,
  ) {
    // The readable buffer may hold the whole receive window: credit already bounds it, and a high
    // water mark below it would delay credit until the buffer is nearly empty.
    super({
      allowHalfOpen: true,
      readableHighWaterMark: limits.recvBytes,
      writableHighWaterMark: limits.maxDataPayload,
    });
    this.sendBytes = limits.sendBytes;
    this.sendMessages = limits.sendMessages;
    this.recvBytes = limits.recvBytes;
    this.recvMessages = limits.recvMessages;
    // Node stops calling _read once the readable side has ended; data consumed after the FIN is
    // credited here instead.
    this.on("end", () => this.updateConsumed());
  }

  // ---------------------------------------------------------------- Duplex implementation

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    if (chunk.length === 0) return callback();
    this.items.push({ kind: "data", chunk, cb: callback });
    this.host.wake(this);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: Callback): void {
    const nonEmpty = chunks.filter((c) => c.chunk.length > 0);
    if (nonEmpty.length === 0) return callback();
    nonEmpty.forEach((c, i) =>
      this.items.push({ kind: "data", chunk: c.chunk, cb: i === nonEmpty.length - 1 ? callback : undefined }),
    );
    this.host.wake(this);
  }

  override _final(callback: Callback): void {
    this.items.push({ kind: "fin", cb: callback });
    this.host.wake(this);
  }

  override _read(): void {
    this.updateConsumed();
  }

  /**
   * Every consumer (flowing mode, pipe, async iteration, explicit reads) goes through read(), and
   * what it returns has left the buffer only after it returns. `_read` alone is not enough: Node
   * calls it before taking data out, and not again until the next push, so the last chunk before a
   * stall would never be credited.
   */
  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    this.updateConsumed();
    return chunk;
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // The session first: whether a RESET is owed depends on what is still queued (queueReset).
    this.host.localDestroy(this, err);
    this.items = [];
    this.head = 0;
    this.releaseReceived();
    callback(err);
  }

  /** Set by abort(): the RESET reason to send instead of the one derived from destroy's error. */
  abortReason: { reason: SendableResetReason; message: string } | undefined;

  /**
   * Destroys the channel and tells the peer why, e.g. `TargetError` when the device's connection to
   * its target failed. The local side sees a plain destroy, without an error.
   */
  abort(reason: SendableResetReason, message = ""): void {
    this.abortReason ??= { reason, message };
    this.destroy();
  }

  // ---------------------------------------------------------------- send side (called by the session)

  /** `wake: false` queues without asking to send: the session holds an early OPEN (§5). */
  queueControl(kind: "open" | "accept", wake = true): void {
    this.items.push({ kind, cb: undefined });
    if (wake) this.host.wake(this);
  }

  /**
   * Replaces everything still queued with a RESET, or with nothing when the OPEN never left (it is
   * the first item queued): a RESET for a channel the peer was never told of would be a
   * ProtocolError that ends the whole stream, and skipping the id is allowed (ids need only increase).
   */
  queueReset(reason: SendableResetReason, message: string): void {
    const openUnsent = this.items[this.head]?.kind === "open";
    this.items = [];
    this.head = 0;
    this.headOffset = 0;
    if (openUnsent) return;
    this.resetToSend = { reason, message };
    this.host.wake(this);
  }

  /** True when the next frame could go out given only this channel's credit. */
  wantsToSend(): boolean {
    if (this.resetToSend) return true;
    const item = this.items[this.head];
    if (!item) return false;
    return item.kind !== "data" || (this.sendBytes > 0 && this.sendMessages > 0);
  }

  /** Builds the next frame with sequence number `seq`, or nothing when credit or data is lacking. */
  nextFrame(seq: number, streamBytes: number): OutFrame | undefined {
    if (this.resetToSend) {
      const { reason, message } = this.resetToSend;
      this.resetToSend = undefined;
      return {
        frame: encodeFrame(seq, { type: "reset", channel: this.id, reason, message }),
        dataBytes: 0,
        callbacks: undefined,
      };
    }
    const item = this.items[this.head];
    if (!item) return undefined;
    if (item.kind !== "data") {
      this.advanceItem();
      const frame =
        item.kind === "open"
          ? encodeFrame(seq, {
              type: "open",
              channel: this.id,
              label: this.label,
              ...(this.acceptImplied ? { noAccept: true } : {}),
            })
          : encodeFrame(seq, { type: item.kind, channel: this.id });
      if (item.kind === "accept") this.peerMaySend = true;
      if (item.kind === "fin") {
        this.finSentFlag = true;
        this.host.finSent(this);
      }
      return { frame, dataBytes: 0, callbacks: item.cb ? [item.cb] : undefined };
    }
    const limit = Math.min(this.limits.maxDataPayload, this.sendBytes, streamBytes);
    if (limit <= 0 || this.sendMessages <= 0) return undefined;
    const chunks: Buffer[] = [];
    let length = 0;
    for (let i = this.head, skip = this.headOffset; length < limit; i++, skip = 0) {
      const next = this.items[i];
      if (!next || next.kind !== "data") break;
      chunks.push(next.chunk);
      length += Math.min(next.chunk.length - skip, limit - length);
    }
    const frame = encodeData(seq, this.id, chunks, this.headOffset, length);
    let callbacks: Callback[] | undefined;
    for (let remaining = length; remaining > 0;) {
      const current = this.items[this.head] as { chunk: Buffer; cb: Callback | undefined };
      const available = current.chunk.length - this.headOffset;
      if (available > remaining) {
        this.headOffset += remaining;
        break;
      }
      remaining -= available;
      if (current.cb) (callbacks ??= []).push(current.cb);
      this.advanceItem();
    }
    this.sendBytes -= length;
    this.sendMessages -= 1;
    return { frame, dataBytes: length, callbacks };
  }

  private advanceItem(): void {
    this.headOffset = 0;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  // ---------------------------------------------------------------- receive side (called by the session)

  /** Delivers one DATA payload; the session has checked the credit. */
  receiveData(payload: Buffer): void {
    this.recvBytes -= payload.length;
    this.recvMessages -= 1;
    this.pushedBytes += payload.length;
    this.frameEnds.push(this.pushedBytes);
    this.push(payload);
  }

  receiveFin(): void {
    this.finReceived = true;
    this.push(null);
  }

  /** Credits what left the readable buffer since the last call. */
  private updateConsumed(): void {
    this.credit(this.pushedBytes - this.readableLength);
  }

  /** Credits everything received: the application will never read it. */
  private releaseReceived(): void {
    this.credit(this.pushedBytes);
  }

  private credit(consumed: number): void {
    const bytes = consumed - this.creditedBytes;
    let messages = 0;
    while (this.frameEndsHead < this.frameEnds.length && this.frameEnds[this.frameEndsHead]! <= consumed) {
      messages++;
      this.frameEndsHead++;
    }
    if (this.frameEndsHead === this.frameEnds.length) {
      this.frameEnds = [];
      this.frameEndsHead = 0;
    }
    if (bytes <= 0 && messages === 0) return;
    if (bytes > 0) this.creditedBytes = consumed;
    this.host.consumed(this, Math.max(bytes, 0), messages);
  }
}
