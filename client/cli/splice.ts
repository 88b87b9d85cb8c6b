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
  // RST, not FIN: the TCP peer must not take an aborted transfer for a complete one.
  const reset = () => {
    if (socket.destroyed) return;
    if (socket.readyState === "opening") socket.destroy();
    else socket.resetAndDestroy();
  };
  channel.on("error", (err: Error) => {
    firstError ??= err;
    reset();
  });
  // A side closed without FIN or error (its stream closed by the application, a local destroy)
  // must not leave the other open forever.
  channel.once("close", () => {
    if (!(channel.readableEnded && channel.writableFinished)) reset();
  });
  socket.once("close", () => {
    if (!(socket.readableEnded && socket.writableFinished)) channel.destroy();
  });
  socket.pipe(channel);
  channel.pipe(socket);
  const closed = (s: Duplex) =>
    new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once("close", resolve)));
  return Promise.all([closed(socket), closed(channel)]).then(() => firstError);
}
