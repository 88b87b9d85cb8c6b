import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Duplex, Readable, Writable } from "node:stream";
import {
  type Frame,
  type MemoryRelay,
  MemoryRelayEndpoint,
  decodeFrame,
  encodeFrame,
  type MemoryRelayOptions,
  type TunnelCloseInfo,
  TunnelSession,
  type TunnelSessionOptions,
  createMemoryRelay,
} from "../../client/tunnel";

type SideOptions = Partial<Omit<TunnelSessionOptions, "role" | "transport">>;

export interface Tunnel {
  relay: MemoryRelay;
  service: TunnelSession;
  device: TunnelSession;
  serviceClosed: Promise<TunnelCloseInfo>;
  deviceClosed: Promise<TunnelCloseInfo>;
  /** Closes both sides (idempotent) and waits until both reported their close. */
  shutdown(): Promise<void>;
}

/** A service and a device session over one in-memory relay, both started. */
export function createTunnel(
  options: { relay?: MemoryRelayOptions; service?: SideOptions; device?: SideOptions } = {},
): Tunnel {
  const relay = createMemoryRelay(options.relay);
  const service = new TunnelSession({ role: "service", transport: relay.a, ...options.service });
  const device = new TunnelSession({ role: "device", transport: relay.b, ...options.device });
  const serviceClosed = once(service, "close").then(([info]) => info);
  const deviceClosed = once(device, "close").then(([info]) => info);
  device.start();
  service.start();
  return {
    relay,
    service,
    device,
    serviceClosed,
    deviceClosed,
    async shutdown() {
      service.close();
      device.close();
      await Promise.all([serviceClosed, deviceClosed]);
    },
  };
}

/** Echoes every channel the device accepts, half-close included. */
export function echoChannels(device: TunnelSession): void {
  device.on("channel", (channel) => {
    channel.on("error", () => undefined);
    channel.pipe(channel);
  });
}

/** Writes `data` in chunks whose sizes cycle through `sizes`, honouring backpressure, then ends. */
export async function writeChunked(stream: Writable, data: Buffer, sizes: readonly number[]): Promise<void> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    const ok = stream.write(data.subarray(at, at + size));
    at += size;
    if (!ok) await once(stream, "drain");
  }
  stream.end();
}

/** Reads a stream to its end; resolves with the sha256 and length of what arrived. */
export function digest(stream: Readable): Promise<{ sha256: string; length: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let length = 0;
    stream.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    stream.once("end", () => resolve({ sha256: hash.digest("hex"), length }));
    stream.once("error", reject);
  });
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export { randomBytes };

/**
 * A hand-driven peer on one end of a relay: sends frames with its own sequence numbers and hands
 * back what it receives, so tests can break the protocol on purpose.
 */
export class RawPeer {
  seq = 0;
  readonly received: Frame[] = [];
  private waiters: Array<() => void> = [];

  constructor(readonly endpoint: MemoryRelayEndpoint) {
    endpoint.on("message", (raw: Uint8Array) => {
      const result = decodeFrame(raw);
      if (!result.ok) throw result.error;
      this.received.push(result.frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  send(frame: Frame): void {
    this.endpoint.send(encodeFrame(this.seq++, frame));
  }

  /** Resolves with the first received frame of `type` (already received or still to come). */
  async next<T extends Frame["type"]>(type: T): Promise<Extract<Frame, { type: T }>> {
    for (;;) {
      const found = this.received.find((f) => f.type === type);
      if (found) {
        this.received.splice(this.received.indexOf(found), 1);
        return found as Extract<Frame, { type: T }>;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

export const DEVICE_HELLO_DEFAULTS = {
  streamWindowBytes: 2 * 1024 * 1024,
  streamWindowMessages: 256,
  channelWindowBytes: 512 * 1024,
  channelWindowMessages: 64,
  maxChannels: 100,
  maxDataPayload: 65536,
};

/** Resolves once a stream has emitted "close", even if that already happened. */
export async function whenClosed(stream: Duplex): Promise<void> {
  if (stream.closed) return;
  await once(stream, "close");
}
