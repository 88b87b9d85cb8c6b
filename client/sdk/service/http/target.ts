/** What the HTTP agent and the fetch dispatcher share: the target and how its channel pool is set up. */
import type { ChannelPoolOptions } from "../pool";
import type { OpenStreamOptions } from "../models";

/** Where requests go: the device (or one of its modules) and the stream name its agent serves. */
export interface DeviceTarget {
  deviceId: string;
  moduleId?: string;
  streamName: string;
}

export interface DeviceHttpOptions {
  /**
   * How channels are spread over streams (see ChannelPoolOptions). One default differs from the
   * pool's: `keepFirstStream` is false, so every stream, the first included, closes after
   * `idleCloseInMs` (30 s) without a connection, and the next request opens a new one.
   */
  pool?: Omit<ChannelPoolOptions, "deviceId" | "name" | "openOptions">;
  /** Passed to each openStream (data for the device's callback, handshake timeout). */
  openOptions?: Omit<OpenStreamOptions, "abortSignal" | "moduleId">;
}

export function poolOptions(target: DeviceTarget, options: DeviceHttpOptions): ChannelPoolOptions {
  return {
    ...options.pool,
    keepFirstStream: options.pool?.keepFirstStream ?? false,
    deviceId: target.deviceId,
    name: target.streamName,
    openOptions: { ...options.openOptions, ...(target.moduleId ? { moduleId: target.moduleId } : {}) },
  };
}
