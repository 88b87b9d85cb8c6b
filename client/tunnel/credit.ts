/**
 * The stream's half of the flow control of docs/tunnel-protocol.md §5: the stream credit in both
 * directions, and the credit consumed but not yet returned (stream and channels), which goes back to
 * the peer in batched WINDOW frames. Each channel keeps its own send credit (TunnelChannel).
 */
import type { TunnelChannel } from "./channel";
import { type Frame, type HelloFields, LIMITS, type WindowEntry } from "./codec";
import type { ResolvedOptions } from "./options";

export class StreamCredit {
  /** What this side may still send (granted by the peer). */
  sendBytes = 0;
  sendMessages = 0;
  /** What the peer may still send (granted by this side). */
  private recvBytes: number;
  private recvMessages: number;
  /** Consumed since the last WINDOW. */
  private pendingBytes = 0;
  private pendingMessages = 0;
  private readonly dirty = new Set<TunnelChannel>();

  constructor(private readonly o: ResolvedOptions) {
    this.recvBytes = o.streamWindowBytes;
    this.recvMessages = o.streamWindowMessages;
  }

  /** The peer's HELLO: its windows are this side's initial send credit. */
  start(peer: HelloFields): void {
    this.sendBytes = peer.streamWindowBytes;
    this.sendMessages = peer.streamWindowMessages;
  }

  /** A WINDOW's stream increments; false when they exceed the window the peer granted. */
  returned(bytes: number, messages: number, peer: HelloFields): boolean {
    this.sendBytes += bytes;
    this.sendMessages += messages;
    return this.sendBytes <= peer.streamWindowBytes && this.sendMessages <= peer.streamWindowMessages;
  }

  /** Charges a received channel frame to the stream credit; the error when it goes beyond it. */
  charge(frame: Extract<Frame, { channel: number }>): string | undefined {
    if (this.recvMessages < 1) return "channel frame beyond the stream's message credit";
    this.recvMessages--;
    if (frame.type !== "data") return undefined;
    if (frame.payload.length > this.recvBytes) return "DATA beyond the stream's byte credit";
    this.recvBytes -= frame.payload.length;
    return undefined;
  }

  /** The application consumed `channel`'s data; true when a WINDOW is due. */
  consumed(channel: TunnelChannel, bytes: number, messages: number): boolean {
    // The peer sends no more DATA after its FIN, so channel credit would be wasted on it.
    if (!channel.retired && !channel.finReceived) {
      channel.pendingBytes += bytes;
      channel.pendingMessages += messages;
      this.dirty.add(channel);
    }
    return this.add(bytes, messages, channel);
  }

  /** Queues stream credit for the peer; true once enough is pending for a WINDOW (§5 batching). */
  add(bytes: number, messages: number, channel?: TunnelChannel): boolean {
    this.pendingBytes += bytes;
    this.pendingMessages += messages;
    const o = this.o;
    return (
      this.pendingBytes * 4 >= o.streamWindowBytes ||
      this.pendingMessages * 4 >= o.streamWindowMessages ||
      (channel !== undefined &&
        (channel.pendingBytes * 2 >= o.channelWindowBytes ||
          channel.pendingMessages * 2 >= o.channelWindowMessages))
    );
  }

  /** Takes the credit consumed since the last WINDOW, for the stream and every channel. */
  takeWindows(): Frame[] {
    const entries: WindowEntry[] = [];
    for (const channel of this.dirty) {
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
    this.dirty.clear();
    let streamBytes = this.pendingBytes;
    let streamMessages = this.pendingMessages;
    this.recvBytes += streamBytes;
    this.recvMessages += streamMessages;
    this.pendingBytes = 0;
    this.pendingMessages = 0;
    const frames: Frame[] = [];
    for (
      let at = 0;
      at < entries.length || streamBytes > 0 || streamMessages > 0;
      at += LIMITS.maxWindowEntries
    ) {
      const channels = entries.slice(at, at + LIMITS.maxWindowEntries);
      frames.push({ type: "window", streamBytes, streamMessages, channels });
      streamBytes = 0;
      streamMessages = 0;
      if (at + LIMITS.maxWindowEntries >= entries.length) break;
    }
    return frames;
  }

  clear(): void {
    this.dirty.clear();
  }
}
