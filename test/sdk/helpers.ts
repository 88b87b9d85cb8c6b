import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { encodeIdSegment } from "../../common/ids";
import { API_VERSION } from "../../client/sdk/service";
import type { StreamsTarget } from "./target";

export const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Echoes a channel back to itself, respecting half-close. */
export function echo(channel: Duplex): void {
  channel.on("error", () => undefined);
  channel.pipe(channel);
}

/** Writes `payload` in `chunk`-sized writes honouring backpressure, ends, and collects the reply. */
export async function roundTrip(
  channel: Duplex,
  payload: Buffer,
  chunk: number,
  onData?: (b: Buffer) => Promise<void> | void,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    channel.once("end", resolve);
    channel.once("error", reject);
  });
  if (onData) {
    // A deliberately slow reader: pause for every chunk until the callback is done.
    channel.on("data", (b: Buffer) => {
      parts.push(b);
      channel.pause();
      void Promise.resolve(onData(b)).then(() => channel.resume());
    });
  } else {
    channel.on("data", (b: Buffer) => parts.push(b));
  }
  for (let off = 0; off < payload.length; off += chunk) {
    if (!channel.write(payload.subarray(off, off + chunk))) {
      await new Promise((resolve) => channel.once("drain", resolve));
    }
  }
  channel.end();
  await ended;
  return Buffer.concat(parts);
}

/** POSTs a stream directly, to get at its relay credentials as an attacker or a test would. */
export async function createRaw(
  target: StreamsTarget,
  deviceId: string,
  name: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(
    `${target.endpoint}/api/devices/${encodeIdSegment(deviceId)}/streams?api-version=${API_VERSION}`,
    {
      method: "POST",
      headers: {
        authorization: await target.authorization(),
        "content-type": "application/json",
        ...headers,
      },
      body: JSON.stringify({ name, handshakeTimeoutSeconds: 15 }),
    },
  );
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** Reads a channel to its end; `beforeChunk` may hold the reader (the channel stays paused meanwhile). */
export function roundTripReadOnly(channel: Duplex, beforeChunk: () => Promise<void>): Promise<Buffer> {
  const parts: Buffer[] = [];
  return new Promise<Buffer>((resolve, reject) => {
    channel.once("end", () => resolve(Buffer.concat(parts)));
    channel.once("error", reject);
    channel.on("data", (b: Buffer) => {
      parts.push(b);
      channel.pause();
      void beforeChunk().then(() => channel.resume());
    });
  });
}
