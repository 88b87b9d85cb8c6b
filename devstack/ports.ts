import type { Server } from "node:net";

/** A listen that failed because something else holds the address; names it so the user can act. */
export class PortInUseError extends Error {
  override readonly name = "PortInUseError";
  constructor(
    readonly host: string,
    readonly port: number,
    readonly service: string,
  ) {
    super(`${service}: ${host}:${port} is already in use`);
  }
}

export function isAddressInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}

/** Listens and resolves with the bound port (the real one when `port` is 0). */
export async function listen(server: Server, port: number, host: string, service: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off("listening", onListening);
      reject(isAddressInUse(err) ? new PortInUseError(host, port, service) : err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error(`${service}: no TCP address after listen`);
  return address.port;
}
