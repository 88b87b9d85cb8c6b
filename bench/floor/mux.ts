/**
 * The floor's multiplexer, the same on both sides: TCP sockets carried as channels over one relay
 * connection, each relay message one frame `[u8 type][u32 channel][payload]`. Nothing else: no flow
 * control, no checksum, no sequence numbers, no handshake, so what it costs is the relay's share of
 * any tunnel (see ./index.ts). It keeps TCP's semantics, so a load ends through it as through the
 * tunnel: a FIN crosses as FIN (half-close), an abort as RESET.
 */
import type { Socket } from "node:net";
import type { RelayConnection } from "../../client/sdk/relay/connection";

/** Frame types. */
const Frame = {
  /** The service side accepted a connection, with its first bytes if any; the device side dials the target. */
  Open: 1,
  Data: 2,
  /** The sender's socket ended (it got a FIN): end the other one. */
  Fin: 3,
  /** The sender's socket closed without both FINs: abort the other one. */
  Reset: 4,
} as const;
type FrameType = (typeof Frame)[keyof typeof Frame];

const HEADER = 5;

function encode(type: FrameType, channel: number, payload?: Buffer): Buffer {
  const f = Buffer.allocUnsafe(HEADER + (payload?.length ?? 0));
  f[0] = type;
  f.writeUInt32BE(channel, 1);
  payload?.copy(f, HEADER);
  return f;
}

/** RST, not FIN: the TCP peer must not take an aborted connection for a complete one. */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.readyState === "opening") socket.destroy();
  else socket.resetAndDestroy();
}

export class FloorMux {
  private readonly channels = new Map<number, Socket>();

  /** `onOpen` (the device side): make the socket for a channel the peer opened. */
  constructor(
    private readonly relay: RelayConnection,
    private readonly onOpen?: (channel: number) => Socket,
  ) {
    relay.on("message", (bytes) => this.receive(bytes));
    relay.once("close", () => {
      for (const socket of this.channels.values()) abort(socket);
      this.channels.clear();
    });
  }

  /**
   * The service side: a new connection becomes a channel. Its OPEN waits one event-loop turn for the
   * first bytes and carries them, as the tunnel holds an early OPEN (docs/tunnel-protocol.md §5), so
   * that the floor stays the cheaper of the two.
   */
  open(channel: number, socket: Socket): void {
    let held = true;
    const release = (first?: Buffer): void => {
      if (!held) return;
      held = false;
      socket.off("data", release);
      socket.off("end", ended);
      socket.off("close", closed);
      this.relay.send(encode(Frame.Open, channel, first));
      this.attach(channel, socket);
    };
    // A FIN within the turn: 'end' has fired before attach could hear it.
    const ended = (): void => {
      release();
      this.relay.send(encode(Frame.Fin, channel));
    };
    const closed = (): void => {
      held = false; // gone before the peer heard of it: nothing to send
    };
    socket.on("data", release);
    socket.once("end", ended);
    socket.once("close", closed);
    setImmediate(() => setImmediate(() => release()));
  }

  /** Both sockets must allow half-open, so that each FIN crosses on its own. */
  private attach(channel: number, socket: Socket): void {
    this.channels.set(channel, socket);
    socket.on("data", (b: Buffer) => this.relay.send(encode(Frame.Data, channel, b)));
    socket.on("end", () => this.relay.send(encode(Frame.Fin, channel)));
    socket.on("error", () => undefined); // the close that follows resets the channel
    socket.on("close", () => {
      // Absent when the peer's RESET closed it: nothing to answer.
      if (!this.channels.delete(channel)) return;
      if (!(socket.readableEnded && socket.writableFinished)) this.relay.send(encode(Frame.Reset, channel));
    });
  }

  private receive(bytes: Uint8Array): void {
    const f = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const type = f[0];
    const channel = f.readUInt32BE(1);
    if (type === Frame.Open && this.onOpen) {
      const socket = this.onOpen(channel);
      this.attach(channel, socket);
      if (f.length > HEADER) socket.write(f.subarray(HEADER));
      return;
    }
    const socket = this.channels.get(channel);
    if (!socket) return; // a frame that crossed the channel's RESET
    switch (type) {
      case Frame.Data:
        // Before the dial completes, net.Socket queues the write: that is the buffering until connected.
        socket.write(f.subarray(HEADER));
        return;
      case Frame.Fin:
        socket.end();
        return;
      case Frame.Reset:
        this.channels.delete(channel);
        abort(socket);
        return;
    }
  }
}
