/**
 * One socket write per tick for a WebSocket's messages. ws writes each message (each fragment) with
 * its own syscall, and on the tunnel's data path the messages of one tick (the frames of many
 * channels, or of one read) were then the largest cost of small-frame traffic (docs/performance.md).
 */
import type { Writable } from "node:stream";

/**
 * Corks `socket` until the end of the current tick, unless it is corked already. ws corks only for
 * the span of one send, so between sends a cork is this one: the state is the socket's own.
 */
export function corkForTick(socket: Writable): void {
  if (socket.writableCorked > 0) return;
  socket.cork();
  process.nextTick(uncork, socket);
}

function uncork(socket: Writable): void {
  socket.uncork();
}
