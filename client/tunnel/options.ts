/**
 * What a tunnel session is configured with and reports (docs/tunnel-protocol.md §4–5): its options
 * and their defaults and bounds, the channel decisions of the device, the statistics and the close
 * report.
 */
import { DEFAULT_DATA_PAYLOAD, LIMITS } from "./codec";
import type { CloseReason, SendableRefuseReason } from "./reasons";
import type { TunnelTransport } from "./transport";

export type TunnelRole = "service" | "device";

export interface ChannelRequest {
  id: number;
  /** The opener's opaque label; never an address (§5). */
  label: string;
}

export type ChannelDecision =
  { accept: true } | { accept: false; reason?: SendableRefuseReason; message?: string };

export interface TunnelSessionOptions {
  role: TunnelRole;
  transport: TunnelTransport;
  /** Receive windows this side grants its peer (§5). Defaults keep the relay far from SlowClient. */
  streamWindowBytes?: number;
  streamWindowMessages?: number;
  channelWindowBytes?: number;
  channelWindowMessages?: number;
  maxDataPayload?: number;
  /** Device: most channels open at once; more are refused with ChannelLimit. */
  maxChannels?: number;
  /** Device: decides on each channel the service opens; the default accepts. */
  acceptChannel?: (request: ChannelRequest) => ChannelDecision | Promise<ChannelDecision>;
  handshakeTimeoutInMs?: number;
  keepaliveIntervalInMs?: number;
  keepaliveTimeoutInMs?: number;
  /**
   * Offer early data (§5: DATA after OPEN without waiting for ACCEPT). Default true; false makes
   * this side speak exactly the HELLO of peers released before the feature.
   */
  earlyData?: boolean;
  /**
   * Offer implicit accept (§5: an early-data OPEN asks for no ACCEPT). Default true; false makes
   * this side speak like peers released with early data only. Needs `earlyData`.
   */
  implicitAccept?: boolean;
  /**
   * Offer the close answer (§4: a CLOSE is answered with a CLOSE, and its sender waits for that
   * answer before it leaves). Default true; false makes this side speak like peers released with
   * implicit accept. Needs `implicitAccept`, as each offer option speaks like an earlier release.
   */
  closeAnswer?: boolean;
}

export interface TunnelStats {
  /** Channel payload bytes, the figures to report. */
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Frame bytes handed to or received from the transport, headers included. */
  wireBytesSent: number;
  wireBytesReceived: number;
  channelsOpened: number;
}

export interface TunnelCloseInfo {
  reason: CloseReason;
  message: string;
  /** True when the peer sent the CLOSE. */
  byPeer: boolean;
  stats: TunnelStats;
}

export const DEFAULT_TUNNEL_OPTIONS = {
  streamWindowBytes: 2 * 1024 * 1024,
  streamWindowMessages: 256,
  channelWindowBytes: 512 * 1024,
  channelWindowMessages: 64,
  maxDataPayload: DEFAULT_DATA_PAYLOAD,
  maxChannels: 100,
  handshakeTimeoutInMs: 30_000,
  keepaliveIntervalInMs: 15_000,
  keepaliveTimeoutInMs: 45_000,
} as const;

export type ResolvedOptions = Omit<
  Required<TunnelSessionOptions>,
  "acceptChannel" | "transport" | "role" | "earlyData" | "implicitAccept" | "closeAnswer"
>;

export function resolveOptions(options: TunnelSessionOptions): ResolvedOptions {
  const o = { ...DEFAULT_TUNNEL_OPTIONS };
  for (const key of Object.keys(o) as Array<keyof ResolvedOptions>) {
    const value = options[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${key} must be a positive integer`);
    (o as Record<keyof ResolvedOptions, number>)[key] = value;
  }
  const ok =
    o.streamWindowBytes <= LIMITS.maxStreamWindowBytes &&
    o.streamWindowMessages <= LIMITS.maxStreamWindowMessages &&
    o.channelWindowBytes <= o.streamWindowBytes &&
    o.channelWindowMessages <= o.streamWindowMessages &&
    o.maxDataPayload >= LIMITS.minDataPayload &&
    o.maxDataPayload <= LIMITS.maxDataPayload &&
    o.keepaliveTimeoutInMs > o.keepaliveIntervalInMs;
  if (!ok)
    throw new RangeError("tunnel windows or keepalive outside the limits of docs/tunnel-protocol.md §4");
  return o;
}
