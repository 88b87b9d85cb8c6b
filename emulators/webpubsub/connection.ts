/**
 * One client connection: its identity, permissions and groups, its bounded outbound queue, and for
 * reliable protocols the per-connection sequence and unacknowledged buffer that survive a dropped
 * socket until recovery or the end of the recovery window.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Duplex } from "node:stream";
import WebSocket from "ws";
import type { DownstreamMessage } from "../../client/webpubsub/codec";
import { corkForTick } from "../../client/webpubsub/cork";
import { controlFrame, frameBytes, type Frame, type OutboundMessage, type Protocol } from "./frames";

export interface QueueLimits {
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  reliableMaxMessages: number;
  reliableMaxBytes: number;
}

/** Why a connection must go; the owner removes it and reports the reason upstream. */
export type OverflowHandler = (conn: ClientConnection, reason: string) => void;

// Enough for retries of recent sends; bounded because every acked send would otherwise stay in memory.
const RECENT_ACK_IDS = 256;

export class ClientConnection {
  readonly roles: Set<string>;
  readonly groups = new Set<string>();
  ws: WebSocket | undefined;
  lastSeen = Date.now();
  /** Set once the connection is gone for good; nothing is sent after that. */
  ended = false;
  recoveryTimer: NodeJS.Timeout | undefined;
  readonly reconnectionToken: string | undefined;
  private queuedMessages = 0;
  private queuedBytes = 0;
  private readonly recentAckIds = new Set<number>();
  private readonly ackIdOrder: number[] = [];
  private nextSequenceId = 0;
  private unacked: { sequenceId: number; frame: Frame; bytes: number }[] = [];
  private unackedBytes = 0;
  /** The WebSocket's TCP socket, corked until the end of a tick that writes to it (see write). */
  private socket: Duplex | undefined;
  /** Next sequence id to resend after a recovery; undefined when not resending. */
  private resendCursor: number | undefined;
  /** Serialises blocking user events so their upstream calls keep the client's order. */
  eventChain: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly hub: string,
    public userId: string | undefined,
    roles: Iterable<string>,
    readonly protocol: Protocol,
    readonly subprotocol: string | undefined,
    private readonly limits: QueueLimits,
    private readonly onOverflow: OverflowHandler,
  ) {
    this.roles = new Set(roles);
    if (protocol.reliable) this.reconnectionToken = randomBytes(24).toString("base64url");
  }

  static newId(): string {
    return randomBytes(16).toString("base64url");
  }

  matchesReconnectionToken(token: string): boolean {
    if (this.reconnectionToken === undefined) return false;
    const a = Buffer.from(this.reconnectionToken);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Returns false when `ackId` was seen recently on this connection: the ack is then `Duplicate`. */
  rememberAckId(ackId: number): boolean {
    if (this.recentAckIds.has(ackId)) return false;
    this.recentAckIds.add(ackId);
    this.ackIdOrder.push(ackId);
    if (this.ackIdOrder.length > RECENT_ACK_IDS) this.recentAckIds.delete(this.ackIdOrder.shift()!);
    return true;
  }

  can(permission: "sendToGroup" | "joinLeaveGroup", group: string): boolean {
    return this.roles.has(`webpubsub.${permission}`) || this.roles.has(`webpubsub.${permission}.${group}`);
  }

  sendControl(msg: Exclude<DownstreamMessage, { type: "message" }>): void {
    const frame = controlFrame(this.protocol.kind, msg);
    if (frame) this.write(frame);
  }

  deliver(message: OutboundMessage): void {
    if (this.ended) return;
    if (!this.protocol.reliable) {
      this.write(message.frame(this.protocol.kind));
      return;
    }
    const sequenceId = ++this.nextSequenceId;
    const frame = message.frame(this.protocol.kind, sequenceId);
    const bytes = frameBytes(frame);
    this.unacked.push({ sequenceId, frame, bytes });
    this.unackedBytes += bytes;
    if (
      this.unacked.length > this.limits.reliableMaxMessages ||
      this.unackedBytes > this.limits.reliableMaxBytes
    ) {
      this.onOverflow(this, "SlowClient");
      return;
    }
    this.write(frame);
  }

  acknowledge(sequenceId: number): void {
    let drop = 0;
    while (drop < this.unacked.length && this.unacked[drop]!.sequenceId <= sequenceId) {
      this.unackedBytes -= this.unacked[drop]!.bytes;
      drop++;
    }
    if (drop > 0) this.unacked = this.unacked.slice(drop);
  }

  /**
   * After a recovery: everything not yet acknowledged goes out again, in order. The buffer may hold
   * more than the outbound queue allows (16 MB against 4 MiB), so the resend is paced by the socket.
   */
  resendUnacked(): void {
    this.resendCursor = this.unacked[0]?.sequenceId;
    this.pumpResend();
  }

  private pumpResend(): void {
    while (
      this.resendCursor !== undefined &&
      this.queuedMessages < this.limits.maxQueuedMessages / 2 &&
      this.queuedBytes < this.limits.maxQueuedBytes / 2
    ) {
      // Sequence ids in the buffer are consecutive, so the cursor maps to an index.
      const first = this.unacked[0];
      const entry = first && this.unacked[Math.max(0, this.resendCursor - first.sequenceId)];
      if (!entry) {
        this.resendCursor = undefined;
        return;
      }
      this.resendCursor = entry.sequenceId + 1;
      this.write(entry.frame);
    }
  }

  private write(frame: Frame): void {
    const ws = this.ws;
    if (this.ended || !ws || ws.readyState !== WebSocket.OPEN) return;
    const bytes = frameBytes(frame);
    this.queuedMessages++;
    this.queuedBytes += bytes;
    if (
      this.queuedMessages > this.limits.maxQueuedMessages ||
      this.queuedBytes > this.limits.maxQueuedBytes
    ) {
      this.onOverflow(this, "SlowClient");
      return;
    }
    // The callback runs when the frame has left for the kernel: that is what the queue measures.
    const done = (): void => {
      if (this.ws !== ws) return;
      this.queuedMessages--;
      this.queuedBytes -= bytes;
      if (this.resendCursor !== undefined) this.pumpResend();
    };
    // Everything written to this client in one tick leaves in one socket write, as upstream.
    if (this.socket) corkForTick(this.socket);
    ws.send(frame.data, { binary: frame.binary }, done);
  }

  /** A new socket for a recovered reliable connection starts with an empty transport queue. */
  attach(ws: WebSocket, socket?: Duplex): void {
    this.ws = ws;
    this.socket = socket;
    this.resendCursor = undefined;
    this.queuedMessages = 0;
    this.queuedBytes = 0;
    this.lastSeen = Date.now();
  }
}
