/**
 * What the multiplexer needs from a relay connection, and nothing more, so the tunnel does not depend
 * on Web PubSub or ws. The relay client implements it by wrapping each frame in a binary
 * `sendToGroup` with `noEcho: true`.
 *
 * Contract:
 * - `send` transmits one frame as one relay message. It never throws; after the transport closed it
 *   does nothing. Ownership of the frame passes to the transport (the session never reuses it).
 * - "message" delivers one received relay message, in order. The session keeps views into it, so the
 *   transport must not reuse the memory afterwards.
 * - "close" is emitted once, when the connection ends for any reason, including a local `close`.
 * - `close(reason, answeringPeer)`: with `answeringPeer`, the peer sent CLOSE and is leaving the relay
 *   itself. The transport may then let the peer leave first (bounded), so that the relay and the
 *   control plane see the side that ended the stream leave first and record it as the closer.
 * - `sendReport()` (optional): sends the transport's end-of-stream report (the relay's byte count)
 *   now, once; a later `close` sends none. The session calls it just before its CLOSE, so the relay
 *   has the report before the peer can react to the CLOSE by leaving (§4, close answer).
 */
export interface TunnelTransport {
  send(frame: Uint8Array): void;
  close(reason: string, answeringPeer?: boolean): void;
  sendReport?(): void;
  on(event: "message", listener: (frame: Uint8Array) => void): unknown;
  on(event: "close", listener: (reason: string) => void): unknown;
  off(event: "message", listener: (frame: Uint8Array) => void): unknown;
  off(event: "close", listener: (reason: string) => void): unknown;
}
