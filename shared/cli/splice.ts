import type { Socket } from "node:net";
import type { Duplex } from "node:stream";

/**
 * Joins a TCP socket and a tunnel channel both ways with TCP semantics: a FIN on either side becomes
 * a FIN on the other (both must allow half-open), and an abort on either side aborts the other: a
 * channel reset resets the TCP connection (RST), a socket error resets the channel. Resolves when
 * both are closed, with the first error, if any.
 */
export function splice(
  socket: Socket,
  channel: Duplex,
  onSocketError: (err: NodeJS.ErrnoException) => void = (err) => channel.destroy(err),
): Promise<Error | undefined> {
  let firstError: Error | undefined;
  socket.on("error", (err: NodeJS.ErrnoException) => {
    firstError ??= err;
    onSocketError(err);
  });
  channel.on("error", (err: Error) => {
    firstError ??= err;
    if (typeof socket.resetAndDestroy === "function" && socket.readyState !== "opening")
      socket.resetAndDestroy();
    else socket.destroy();
  });
  socket.pipe(channel);
  channel.pipe(socket);
  const closed = (s: Duplex) =>
    new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once("close", resolve)));
  return Promise.all([closed(socket), closed(channel)]).then(() => firstError);
}
