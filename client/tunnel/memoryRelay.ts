/**
 * An in-memory relay between two TunnelTransports with the Web PubSub emulator's documented
 * semantics (webpubsub-protocol.md §5): a bounded outbound queue per receiver (1,000 messages or
 * 4 MiB, whichever first; beyond it the receiver is disconnected with `SlowClient`), a 1 MB message
 * limit, no backpressure to senders, and no notice to a member when the other leaves unless
 * `closePeerOnDisconnect` stands in for the control plane doing so. Faults can be injected per
 * message. Used by tests and benchmarks; it has no timers besides setImmediate.
 */
import { EventEmitter } from "node:events";
import type { TunnelTransport } from "./transport";

export type Side = "a" | "b";
/** What happens to one message: `delay` holds it back until after the sender's next message. */
export type FaultAction = "pass" | "drop" | "duplicate" | "corrupt" | "truncate" | "delay";

export interface MemoryRelayOptions {
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  maxMessageBytes?: number;
  /** Messages handed to a receiver per event-loop turn; lower values model a slower reader. */
  deliveryBatch?: number;
  /** Called for every message sent; `index` counts the sender's messages from 0. */
  fault?: (frame: Buffer, from: Side, index: number) => FaultAction;
  /** Close the other member when one leaves, as the control plane does on `disconnected`. */
  closePeerOnDisconnect?: boolean;
}

export interface QueueStats {
  /** The deepest the receiver's queue has been, in messages and in bytes. */
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  delivered: number;
}

const DEFAULTS = {
  maxQueuedMessages: 1000,
  maxQueuedBytes: 4 * 1024 * 1024,
  maxMessageBytes: 1024 * 1024,
  deliveryBatch: Number.POSITIVE_INFINITY,
  closePeerOnDisconnect: true,
};

export class MemoryRelayEndpoint extends EventEmitter implements TunnelTransport {
  peer: MemoryRelayEndpoint | undefined;
  readonly stats: QueueStats = { maxQueuedMessages: 0, maxQueuedBytes: 0, delivered: 0 };
  private queue: Buffer[] = [];
  private head = 0;
  private queuedBytes = 0;
  private sentCount = 0;
  private delayed: Buffer | undefined;
  private deliveryPending: NodeJS.Immediate | undefined;
  private closedReason: string | undefined;
  /** Set when the peer left: this member is closed once what was already queued for it is delivered. */
  private closeAfterDrain: string | undefined;

  constructor(
    readonly side: Side,
    private readonly options: Required<Omit<MemoryRelayOptions, "fault">> & Pick<MemoryRelayOptions, "fault">,
  ) {
    super();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    const buf = Buffer.isBuffer(frame)
      ? frame
      : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    if (buf.length > this.options.maxMessageBytes) {
      this.disconnect("MessageTooLarge");
      return;
    }
    const action = this.options.fault?.(buf, this.side, this.sentCount++) ?? "pass";
    const held = this.delayed;
    this.delayed = undefined;
    switch (action) {
      case "pass":
        this.forward(buf);
        break;
      case "drop":
        break;
      case "duplicate":
        this.forward(buf);
        this.forward(buf);
        break;
      case "corrupt": {
        const copy = Buffer.from(buf);
        const at = copy.length - 1 - (this.sentCount % Math.min(copy.length, 64));
        copy[at] = (copy[at] ?? 0) ^ 0x5a;
        this.forward(copy);
        break;
      }
      case "truncate":
        this.forward(buf.subarray(0, Math.max(0, buf.length - 1 - (this.sentCount % 16))));
        break;
      case "delay":
        this.delayed = buf;
        break;
    }
    if (held) this.forward(held);
  }

  close(reason: string): void {
    this.disconnect(reason);
  }

  private forward(frame: Buffer): void {
    this.peer?.enqueue(frame);
  }

  private enqueue(frame: Buffer): void {
    if (this.closed) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    const depth = this.queue.length - this.head;
    this.stats.maxQueuedMessages = Math.max(this.stats.maxQueuedMessages, depth);
    this.stats.maxQueuedBytes = Math.max(this.stats.maxQueuedBytes, this.queuedBytes);
    if (depth > this.options.maxQueuedMessages || this.queuedBytes > this.options.maxQueuedBytes) {
      this.disconnect("SlowClient");
      return;
    }
    this.deliveryPending ??= setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.deliveryPending = undefined;
    let budget = this.options.deliveryBatch;
    while (budget-- > 0 && this.head < this.queue.length && !this.closed) {
      const frame = this.queue[this.head]!;
      this.queue[this.head++] = EMPTY;
      this.queuedBytes -= frame.length;
      this.stats.delivered++;
      this.emit("message", frame);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      if (this.closeAfterDrain !== undefined) this.disconnect(this.closeAfterDrain);
    } else if (!this.closed) {
      this.deliveryPending = setImmediate(() => this.deliver());
    }
  }

  private disconnect(reason: string): void {
    if (this.closed) return;
    this.closedReason = reason;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    if (this.deliveryPending) clearImmediate(this.deliveryPending);
    this.deliveryPending = undefined;
    // A WebSocket reports its close asynchronously; so does this, which also keeps a sender's loop
    // from re-entering the receiver's close handling.
    process.nextTick(() => this.emit("close", reason));
    const peer = this.peer;
    if (this.options.closePeerOnDisconnect && peer && !peer.closed) peer.leaveAfterDrain("PeerDisconnected");
  }

  private leaveAfterDrain(reason: string): void {
    this.closeAfterDrain = reason;
    if (this.head === this.queue.length && !this.deliveryPending) this.disconnect(reason);
  }
}

const EMPTY = Buffer.alloc(0);

export interface MemoryRelay {
  a: MemoryRelayEndpoint;
  b: MemoryRelayEndpoint;
}

/** Two connected relay members; `a` usually plays the service side and `b` the device. */
export function createMemoryRelay(options: MemoryRelayOptions = {}): MemoryRelay {
  const resolved = { ...DEFAULTS, ...options };
  const a = new MemoryRelayEndpoint("a", resolved);
  const b = new MemoryRelayEndpoint("b", resolved);
  a.peer = b;
  b.peer = a;
  return { a, b };
}
